//! Streaming detokenization: text pieces as ids arrive, holding back a token that ends in the middle of a UTF-8
//! character (an emoji spread over byte tokens) until the character is complete.
//!
//! Decoding token by token is wrong twice over: byte tokens decode to U+FFFD until their character is whole, and
//! decoders that look at neighbours (SentencePiece's leading-space strip) change a token's text by position. So,
//! as text-generation-inference does, each step decodes a short window twice, `ids[prefix..read]` (already
//! emitted, kept as context) and `ids[prefix..]`, and emits the difference once it no longer ends in U+FFFD.

use super::Tokenizer;

/// Turns generated ids into text pieces. Made by `Tokenizer::stream_decoder`; owns a (cheap) clone of the
/// tokenizer, so it can live beside it in a session.
#[derive(Debug)]
pub struct StreamDecoder {
    tokenizer: Tokenizer,
    skip_special: bool,
    /// Ids from the start of the context window on; everything before it was dropped.
    ids: Vec<u32>,
    /// `ids[..read]` has been emitted; `ids[..prefix]` of it is no longer needed as context.
    prefix: usize,
    read: usize,
}

impl StreamDecoder {
    pub fn new(tokenizer: Tokenizer, skip_special: bool) -> Self {
        StreamDecoder { tokenizer, skip_special, ids: Vec::new(), prefix: 0, read: 0 }
    }

    /// Adds one id; returns the text it completes, or None while it is held back (an incomplete character, or a
    /// skipped special token).
    pub fn step(&mut self, id: u32) -> Option<String> {
        self.ids.push(id);
        let before = self.tokenizer.decode(&self.ids[self.prefix..self.read], self.skip_special);
        let now = self.tokenizer.decode(&self.ids[self.prefix..], self.skip_special);
        if now.len() <= before.len() || now.ends_with('\u{FFFD}') {
            return None;
        }
        // The window's old text is normally a prefix of its new text; when a decoder rewrote it (rare), emit from
        // the first char boundary past the old length rather than repeat or lose text.
        let piece = match now.strip_prefix(before.as_str()) {
            Some(rest) => rest.to_string(),
            None => {
                let mut cut = before.len();
                while !now.is_char_boundary(cut) {
                    cut += 1;
                }
                now[cut..].to_string()
            }
        };
        self.prefix = self.read;
        self.read = self.ids.len();
        if self.prefix > 0 {
            self.ids.drain(..self.prefix);
            self.read -= self.prefix;
            self.prefix = 0;
        }
        Some(piece)
    }

    /// Adds several ids; returns the text they complete (possibly empty).
    pub fn extend(&mut self, ids: &[u32]) -> String {
        ids.iter().filter_map(|&id| self.step(id)).collect()
    }

    /// The text still held back (an incomplete character comes out as U+FFFD), for the end of a stream. The
    /// decoder then starts afresh.
    pub fn flush(&mut self) -> String {
        let before = self.tokenizer.decode(&self.ids[self.prefix..self.read], self.skip_special);
        let now = self.tokenizer.decode(&self.ids[self.prefix..], self.skip_special);
        self.reset();
        match now.strip_prefix(before.as_str()) {
            Some(rest) => rest.to_string(),
            None if now.len() > before.len() => {
                let mut cut = before.len();
                while !now.is_char_boundary(cut) {
                    cut += 1;
                }
                now[cut..].to_string()
            }
            None => String::new(),
        }
    }

    /// Whether some ids are held back.
    pub fn has_pending(&self) -> bool {
        self.read < self.ids.len()
    }

    /// Forgets everything, as at the start of a new stream.
    pub fn reset(&mut self) {
        self.ids.clear();
        self.prefix = 0;
        self.read = 0;
    }
}
