//! safetensors tests: one file, a folder, sharded folders with an index; corrupt and unsupported files.

use half::{bf16, f16};
use wgpu_llm::loader::{self, FileFormat, MetaValue, SourceDType};

use super::{assert_has, open_err, TempDir};

/// A safetensors file by hand: u64 header length, JSON header, data.
fn safetensors_bytes(tensors: &[(&str, &str, Vec<usize>, Vec<u8>)], metadata: Option<&str>) -> Vec<u8> {
    let mut entries = Vec::new();
    if let Some(m) = metadata {
        entries.push(format!("\"__metadata__\":{m}"));
    }
    let (mut data, mut start) = (Vec::new(), 0);
    for (name, dtype, shape, bytes) in tensors {
        let end = start + bytes.len();
        entries
            .push(format!("\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{start},{end}]}}"));
        data.extend_from_slice(bytes);
        start = end;
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn st_tensors() -> Vec<(&'static str, &'static str, Vec<usize>, Vec<u8>)> {
    let f32s: Vec<u8> = [1.0f32, -2.5, 3.0, 0.125, 7.0, -8.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let f16s: Vec<u8> = [0.5f32, -1.0, 2.0, 1024.0].iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
    let bf16s: Vec<u8> = [1.0f32, -256.0].iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
    vec![
        ("model.embed_tokens.weight", "F32", vec![3, 2], f32s),
        ("model.norm.weight", "F16", vec![4], f16s),
        ("lm_head.weight", "BF16", vec![1, 2], bf16s),
    ]
}

fn check_st_store(store: &loader::WeightStore) {
    assert_eq!(store.format(), FileFormat::Safetensors);
    assert_eq!(store.len(), 3);
    let e = store.entry("model.embed_tokens.weight").unwrap();
    assert_eq!((e.shape.as_slice(), e.dtype), (&[3, 2][..], SourceDType::F32));
    assert_eq!(store.to_f32("model.embed_tokens.weight").unwrap(), [1.0, -2.5, 3.0, 0.125, 7.0, -8.0]);
    assert_eq!(store.entry("model.norm.weight").unwrap().dtype, SourceDType::F16);
    assert_eq!(store.to_f32("model.norm.weight").unwrap(), [0.5, -1.0, 2.0, 1024.0]);
    assert_eq!(store.bytes("model.norm.weight").unwrap(), &st_tensors()[1].3[..]);
    assert_eq!(store.to_f32("lm_head.weight").unwrap(), [1.0, -256.0]);
}

#[test]
fn safetensors_single_file_folder_and_shards() {
    let dir = TempDir::new("st");
    let bytes = safetensors_bytes(&st_tensors(), Some("{\"format\":\"pt\"}"));
    let file = dir.write("model.safetensors", &bytes);
    let store = loader::open(&file).unwrap();
    check_st_store(&store);
    assert_eq!(store.meta("format"), Some(&MetaValue::Str("pt".into())));
    check_st_store(&loader::open(&dir.0).unwrap());

    // Sharded: two files and an index; the index wins over model.safetensors in the same folder.
    let shards = TempDir::new("st_shards");
    let t = st_tensors();
    shards.write("model-00001-of-00002.safetensors", &safetensors_bytes(&t[..2], None));
    shards.write("model-00002-of-00002.safetensors", &safetensors_bytes(&t[2..], None));
    let index = r#"{"metadata": {"total_size": 40}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.norm.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}"#;
    let index_path = shards.write("model.safetensors.index.json", index.as_bytes());
    let store = loader::open(&shards.0).unwrap();
    check_st_store(&store);
    assert_eq!(store.meta("total_size"), Some(&MetaValue::U64(40)));
    assert!(store.path_of(store.entry("lm_head.weight").unwrap()).ends_with("model-00002-of-00002.safetensors"));

    // A tensor the index puts in the wrong shard, a missing shard, a shard path escaping the folder.
    let wrong = index.replace("\"lm_head.weight\": \"model-00002", "\"lm_head.weight\": \"model-00001");
    std::fs::write(
        &index_path,
        wrong.replace("\"model.norm.weight\": \"model-00001", "\"model.norm.weight\": \"model-00002"),
    )
    .unwrap();
    assert_has(&loader::open(&shards.0).unwrap_err().to_string(), &["index.json", "is not in its shard"]);
    std::fs::write(&index_path, index.replace("00002-of-00002", "00003-of-00002")).unwrap();
    assert_has(&loader::open(&shards.0).unwrap_err().to_string(), &["00003-of-00002.safetensors", "cannot open"]);
    std::fs::write(&index_path, index.replace("model-00002-of", "../model-00002-of")).unwrap();
    assert_has(&loader::open(&shards.0).unwrap_err().to_string(), &["lm_head.weight", "outside the folder"]);
}

#[test]
fn safetensors_corrupt_files_give_clear_errors() {
    let dir = TempDir::new("st_corrupt");
    let good = safetensors_bytes(&st_tensors(), None);
    for cut in [4, 20, good.len() - 3] {
        assert_has(&open_err(&dir, "cut.safetensors", &good[..cut]), &["not a valid safetensors file"]);
    }
    let mut t = st_tensors();
    t[0].1 = "F64";
    t[0].2 = vec![3];
    assert_has(
        &open_err(&dir, "f64.safetensors", &safetensors_bytes(&t, None)),
        &["model.embed_tokens.weight", "F64", "not supported"],
    );
    // Integer tensors are buffers (position_ids), not weights: the file opens without them.
    t[0].1 = "I64";
    let p = dir.0.join("i64.safetensors");
    std::fs::write(&p, safetensors_bytes(&t, None)).unwrap();
    let store = loader::open(&p).unwrap();
    assert!(!store.contains("model.embed_tokens.weight"));
    let empty = TempDir::new("st_empty_dir");
    assert_has(&loader::open(&empty.0).unwrap_err().to_string(), &["neither model.safetensors"]);
}
