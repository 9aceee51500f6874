//! Host-side tensors and dtypes: what goes into and comes out of a Plan or the CPU reference.

use crate::error::{Error, Result};

/// Element type of a graph value. Float tensors run as F32 or F16 on the GPU; ids are U32; loss targets I32
/// (so that the ignore index -100 is representable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    U32,
    I32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F16 => 2,
            _ => 4,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16)
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
            DType::I32 => "i32",
        }
    }
}

/// Number of elements of a shape (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// A host tensor. Float data is always held as f32 on the host (an F16 tensor is rounded on upload and
/// widened on readback); integer data as the raw 32-bit values.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: HostData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    U32(Vec<u32>),
    I32(Vec<i32>),
}

impl HostTensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        Self::check(shape, data.len())?;
        Ok(Self { shape: shape.to_vec(), dtype: DType::F32, data: HostData::F32(data) })
    }
    /// Float data that will live on the GPU as f16.
    pub fn f16(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        Self::check(shape, data.len())?;
        Ok(Self { shape: shape.to_vec(), dtype: DType::F16, data: HostData::F32(data) })
    }
    pub fn u32(shape: &[usize], data: Vec<u32>) -> Result<Self> {
        Self::check(shape, data.len())?;
        Ok(Self { shape: shape.to_vec(), dtype: DType::U32, data: HostData::U32(data) })
    }
    pub fn i32(shape: &[usize], data: Vec<i32>) -> Result<Self> {
        Self::check(shape, data.len())?;
        Ok(Self { shape: shape.to_vec(), dtype: DType::I32, data: HostData::I32(data) })
    }
    pub fn zeros(shape: &[usize], dtype: DType) -> Self {
        let n = numel(shape);
        let data = match dtype {
            DType::F32 | DType::F16 => HostData::F32(vec![0.0; n]),
            DType::U32 => HostData::U32(vec![0; n]),
            DType::I32 => HostData::I32(vec![0; n]),
        };
        Self { shape: shape.to_vec(), dtype, data }
    }
    fn check(shape: &[usize], len: usize) -> Result<()> {
        if numel(shape) != len {
            return Err(Error::Other(format!("tensor of shape {shape:?} needs {} values, got {len}", numel(shape))));
        }
        Ok(())
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// Float values (panics never: integer tensors are converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::U32(v) => v.iter().map(|&x| x as f32).collect(),
            HostData::I32(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            HostData::F32(v) => Some(v),
            _ => None,
        }
    }
    /// The bytes as the GPU stores them (f16 rounded to nearest even).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.with_bytes_as(self.dtype, <[u8]>::to_vec)
    }

    /// `f` on the bytes of this tensor stored as `dtype` (f32 data rounds to f16 when `dtype` is F16; other
    /// dtypes are the data's own bytes, lent without a copy). Loading a model passes every weight through
    /// here: the f16 conversion is one slice call (half uses the CPU's F16C instructions where it has them)
    /// into one fresh buffer; SmolLM2's 135 M weights took ~0.6 s one `f16::from_f32` at a time, plus two
    /// copies.
    pub fn with_bytes_as<R>(&self, dtype: DType, f: impl FnOnce(&[u8]) -> R) -> R {
        match (&self.data, dtype) {
            (HostData::F32(v), DType::F16) => {
                use half::slice::HalfFloatSliceExt;
                let mut h = vec![half::f16::ZERO; v.len()];
                h.convert_from_f32_slice(v);
                f(bytemuck::cast_slice(&h))
            }
            (HostData::F32(v), _) => f(bytemuck::cast_slice(v)),
            (HostData::U32(v), _) => f(bytemuck::cast_slice(v)),
            (HostData::I32(v), _) => f(bytemuck::cast_slice(v)),
        }
    }

    /// Rebuild a tensor from GPU bytes.
    pub fn from_bytes(shape: &[usize], dtype: DType, bytes: &[u8]) -> Self {
        let n = numel(shape);
        let data = match dtype {
            DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes[..n * 4])),
            DType::F16 => {
                use half::slice::HalfFloatSliceExt;
                let h = bytemuck::pod_collect_to_vec::<u8, half::f16>(&bytes[..n * 2]);
                let mut v = vec![0.0; n];
                h.convert_to_f32_slice(&mut v);
                HostData::F32(v)
            }
            DType::U32 => HostData::U32(bytemuck::pod_collect_to_vec::<u8, u32>(&bytes[..n * 4])),
            DType::I32 => HostData::I32(bytemuck::pod_collect_to_vec::<u8, i32>(&bytes[..n * 4])),
        };
        Self { shape: shape.to_vec(), dtype, data }
    }
}
