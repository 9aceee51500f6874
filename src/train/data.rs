//! Labelled text files for the classification commands (`finetune`, `evaluate`): CSV, TSV or JSONL with a
//! header (the csv crate reads the delimited ones), a text column and a label column of names or integer
//! ids; and the course's `TextPreprocessor` cleaning. Every problem is an error naming the file, the line
//! and the field, found before any GPU work.

use std::path::Path;

use crate::error::{Error, Result};

/// One labelled example.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub text: String,
    pub label: usize,
}

/// Where the text and label are, and the label names (None: taken from the file, sorted, or the integers
/// 0..=max when every label is an integer).
#[derive(Clone, Debug)]
pub struct Columns<'a> {
    pub text: &'a str,
    pub label: &'a str,
    pub labels: Option<&'a [String]>,
}

fn err(path: &Path, line: usize, detail: impl Into<String>) -> Error {
    let at = if line > 0 { format!(" line {line}") } else { String::new() };
    Error::Format { file: format!("{}{at}", path.display()), detail: detail.into() }
}

/// The raw (text, label string, line) rows of a file.
fn rows(path: &Path, cols: &Columns) -> Result<Vec<(String, String, usize)>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let bytes = std::fs::read(path).map_err(|e| err(path, 0, format!("cannot read: {e}")))?;
    let mut out = vec![];
    if ext == "jsonl" || ext == "json" {
        let text = String::from_utf8(bytes).map_err(|e| err(path, 0, format!("not UTF-8: {e}")))?;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| err(path, n, format!("not a JSON object: {e}")))?;
            let obj = v.as_object().ok_or_else(|| err(path, n, "not a JSON object"))?;
            let text = match obj.get(cols.text) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => return Err(err(path, n, format!("column {:?} is not text: {other}", cols.text))),
                None => return Err(err(path, n, format!("no column {:?}", cols.text))),
            };
            let label = match obj.get(cols.label) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(x)) => x.to_string(),
                Some(other) => return Err(err(path, n, format!("label {:?} is {other}", cols.label))),
                None => return Err(err(path, n, format!("no column {:?}", cols.label))),
            };
            out.push((text, label, n));
        }
    } else {
        let delim = match ext.as_str() {
            "tsv" | "tab" => b'\t',
            "csv" | "txt" | "" => b',',
            other => return Err(err(path, 0, format!("unknown data format .{other} (use .csv, .tsv or .jsonl)"))),
        };
        // TSV has no quoting (a text may hold a lone `"`); CSV quotes as RFC 4180.
        let mut rd =
            csv::ReaderBuilder::new().delimiter(delim).quoting(delim == b',').flexible(false).from_reader(&bytes[..]);
        let header = rd.headers().map_err(|e| err(path, 1, format!("bad header: {e}")))?.clone();
        let find = |name: &str| {
            header.iter().position(|h| h.trim() == name).ok_or_else(|| {
                let have: Vec<&str> = header.iter().collect();
                err(path, 1, format!("no column {name:?} (the header has {have:?})"))
            })
        };
        let (ti, li) = (find(cols.text)?, find(cols.label)?);
        for rec in rd.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line() as usize);
                err(path, line, format!("{e}"))
            })?;
            let n = rec.position().map_or(0, |p| p.line() as usize);
            out.push((rec[ti].to_string(), rec[li].trim().to_string(), n));
        }
    }
    if out.is_empty() {
        return Err(err(path, 0, "has no examples"));
    }
    Ok(out)
}

/// Read a labelled file. Returns the examples and the label names in id order.
pub fn read_labelled(path: &Path, cols: &Columns) -> Result<(Vec<Example>, Vec<String>)> {
    let rows = rows(path, cols)?;
    let names: Vec<String> = match cols.labels {
        Some(l) => l.to_vec(),
        None if rows.iter().all(|r| r.1.parse::<usize>().is_ok()) => {
            let max = rows.iter().map(|r| r.1.parse::<usize>().unwrap_or(0)).max().unwrap_or(0);
            (0..=max).map(|i| i.to_string()).collect()
        }
        None => {
            let mut v: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
            v.sort();
            v.dedup();
            v
        }
    };
    let mut out = vec![];
    for (text, label, n) in rows {
        // A name, or an integer id into the names.
        let id =
            names.iter().position(|l| *l == label).or_else(|| label.parse::<usize>().ok().filter(|&i| i < names.len()));
        let id = id.ok_or_else(|| err(path, n, format!("unknown label {label:?} (the labels are {names:?})")))?;
        if text.trim().is_empty() {
            return Err(err(path, n, format!("column {:?} is empty", cols.text)));
        }
        out.push(Example { text, label: id });
    }
    Ok((out, names))
}

/// The course's `TextPreprocessor.clean_text`: collapse runs of whitespace and trim; with `strip_punct` also
/// drop punctuation and lowercase (its optional step).
pub fn clean(text: &str, strip_punct: bool) -> String {
    let kept: String = if strip_punct {
        text.chars().filter(|c| !c.is_ascii_punctuation()).flat_map(char::to_lowercase).collect()
    } else {
        text.to_string()
    };
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Split off the last `fraction` of `examples` after a seeded shuffle (`--val-split`): (train, val).
pub fn split(examples: Vec<Example>, fraction: f64, seed: u64) -> Result<(Vec<Example>, Vec<Example>)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::Other(format!("--val-split {fraction}: must be in [0, 1)")));
    }
    let mut ex = examples;
    shuffle(&mut ex, seed);
    let n_val = ((ex.len() as f64) * fraction).round() as usize;
    let val = ex.split_off(ex.len() - n_val);
    Ok((ex, val))
}

/// How many batches a megabatch of `length_grouped` holds (transformers' `LengthGroupedSampler` default).
pub const MEGABATCH: usize = 50;

/// The batches of an epoch with similar lengths together (`--group-by-length`, as transformers'
/// `group_by_length`): `order` (already shuffled) cut into megabatches of `MEGABATCH` batches, each sorted
/// by `len` (longest first; ties keep their shuffled order) and cut into batches of `batch`, then the
/// batches shuffled with `seed`. Every index appears once; only the last megabatch may leave a short batch.
/// A batch pads to the bucket of its longest sequence, so random batches of short texts almost all pad to
/// the longest bucket; grouped, most pad to a shorter one.
pub fn length_grouped(order: &[usize], len: impl Fn(usize) -> usize, batch: usize, seed: u64) -> Vec<Vec<usize>> {
    let batch = batch.max(1);
    let mut batches = vec![];
    for mega in order.chunks(batch * MEGABATCH) {
        let mut m = mega.to_vec();
        m.sort_by_key(|&i| std::cmp::Reverse(len(i)));
        batches.extend(m.chunks(batch).map(<[usize]>::to_vec));
    }
    shuffle(&mut batches, seed);
    batches
}

/// Indices of `n` items by length (stable): batches of neighbours pad to the shortest buckets they can
/// (evaluation and prediction, whose results do not depend on the order).
pub fn by_length(n: usize, len: impl Fn(usize) -> usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by_key(|&i| len(i));
    idx
}

/// A seeded Fisher–Yates shuffle, the same on every platform.
pub fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = super::SplitMix(seed);
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("wgpu-llm-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const COLS: Columns = Columns { text: "text", label: "label", labels: None };

    #[test]
    fn reads_csv_tsv_and_jsonl_with_names_or_ids() {
        let (ex, names) =
            read_labelled(&write("a.csv", "text,label\n\"good, really\",positive\nbad,negative\n"), &COLS).unwrap();
        assert_eq!(names, ["negative", "positive"]);
        assert_eq!(ex[0], Example { text: "good, really".into(), label: 1 });
        let (ex, names) = read_labelled(&write("a.tsv", "label\ttext\n2\tfine\n0\tno\n"), &COLS).unwrap();
        assert_eq!((names.len(), ex[0].label, ex[1].label), (3, 2, 0));
        let labels = ["negative".to_string(), "neutral".into(), "positive".into()];
        let cols = Columns { labels: Some(&labels), ..COLS };
        let (ex, _) = read_labelled(
            &write("a.jsonl", "{\"text\": \"ok\", \"label\": \"neutral\"}\n\n{\"text\": \"x\", \"label\": 2}\n"),
            &cols,
        )
        .unwrap();
        assert_eq!((ex[0].label, ex[1].label), (1, 2));
    }

    #[test]
    fn bad_files_name_the_line_and_field() {
        let labels = ["negative".to_string(), "positive".into()];
        let cols = Columns { labels: Some(&labels), ..COLS };
        let cases = [
            ("b.csv", "txt,label\nhi,positive\n", "no column \"text\""),
            ("c.csv", "text,label\nhi,positive\nho,angry\n", "line 3: unknown label \"angry\""),
            ("d.csv", "text,label\n", "has no examples"),
            ("e.jsonl", "{\"text\": 3, \"label\": \"positive\"}\n", "line 1: column \"text\" is not text"),
            ("f.jsonl", "[1, 2]\n", "line 1: not a JSON object"),
            ("g.csv", "text,label\nhi,positive,extra\n", "line 2"),
            ("h.xlsx", "x", "unknown data format"),
            ("i.csv", "text,label\n  ,positive\n", "line 2: column \"text\" is empty"),
        ];
        for (name, text, want) in cases {
            let e = read_labelled(&write(name, text), &cols).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(name), "{name}: {e}");
        }
    }

    #[test]
    fn cleaning_and_splitting() {
        assert_eq!(clean("  Hello,\n  World!  ", false), "Hello, World!");
        assert_eq!(clean("  Hello,\n  World!  ", true), "hello world");
        let ex: Vec<Example> = (0..10).map(|i| Example { text: i.to_string(), label: 0 }).collect();
        let (tr, va) = split(ex.clone(), 0.2, 1).unwrap();
        assert_eq!((tr.len(), va.len()), (8, 2));
        assert_eq!(split(ex, 0.2, 1).unwrap().1, va, "same seed, same split");
    }

    #[test]
    fn length_grouped_batches_cover_every_index_once_with_similar_lengths() {
        let n = 1000;
        let len = |i: usize| (i * 7919) % 61 + 3;
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, 5);
        let batches = length_grouped(&order, len, 8, 9);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..n).collect::<Vec<_>>(), "every index once");
        assert_eq!(batches.iter().filter(|b| b.len() != 8).count(), 0, "1000 = 125 batches of 8");
        // Within a megabatch the spread of a batch is small; random batches of 8 span most of 3..64.
        let spread =
            |b: &Vec<usize>| b.iter().map(|&i| len(i)).max().unwrap() - b.iter().map(|&i| len(i)).min().unwrap();
        let grouped: usize = batches.iter().map(spread).sum();
        let random: usize = order.chunks(8).map(|c| spread(&c.to_vec())).sum();
        assert!(grouped * 4 < random, "grouped spread {grouped} vs random {random}");
        assert_eq!(length_grouped(&order, len, 8, 9), batches, "same seed, same batches");
        assert_ne!(length_grouped(&order, len, 8, 10), batches, "the batch order follows the seed");
        // A last short megabatch leaves one short batch.
        let b = length_grouped(&order[..405], len, 8, 1);
        assert_eq!((b.len(), b.iter().filter(|b| b.len() != 8).count()), (51, 1));
    }
}
