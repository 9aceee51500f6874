#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wgpu_llm::fuzzing::int8(data));
