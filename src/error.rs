//! The one library error type: every variant names the op, kernel, tensor or file involved, and the shapes.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    #[error("could not open the GPU device on {adapter}: {reason}")]
    Device { adapter: String, reason: String },
    #[error("op {op}: shape mismatch: {detail} (inputs {shapes:?})")]
    Shape { op: String, detail: String, shapes: Vec<Vec<usize>> },
    #[error("op {op}: wrong dtype: {detail}")]
    DType { op: String, detail: String },
    #[error("kernel {kernel} (entry {entry}, {variant}) failed to compile: {message}")]
    Compile { kernel: String, entry: String, variant: String, message: String },
    #[error("tensor {tensor} needs {bytes} bytes, more than the device allows ({limit} bytes, {what}){hint}")]
    TooLarge { tensor: String, bytes: u64, limit: u64, what: String, hint: String },
    #[error("op {op}: {detail}")]
    Unsupported { op: String, detail: String },
    #[error("graph: {0}")]
    Graph(String),
    #[error("plan run: {0}")]
    Run(String),
    #[error("GPU error in {context}: {message}")]
    Gpu { context: String, message: String },
    #[error("model file {file}: {detail}")]
    Format { file: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}
