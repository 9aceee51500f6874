//! Argument parsing (clap) and printing for the `wgpu-llm` binary; no logic of its own.

mod generate;
mod lora;
pub mod model_path;
mod perplexity;
mod prune;
mod quantize;
mod train;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use generate::{ModelArgs, SampleArgs};

use crate::error::{Error, Result};
use crate::gpu::{list_adapters, Gpu, GpuOptions, Tier};
use model_path::resolve;

#[derive(Parser)]
#[command(name = "wgpu-llm", version, about = "A GPU compute-shader Transformer engine on wgpu")]
struct Cli {
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Which GPU to run on.
#[derive(Args, Clone)]
pub struct GpuArgs {
    /// Adapter name substring (default: the most capable adapter).
    #[arg(long, global = true, env = "WGPU_LLM_ADAPTER")]
    adapter: Option<String>,
    /// Backend: vulkan, metal, dx12 or gl.
    #[arg(long, global = true, env = "WGPU_LLM_BACKEND")]
    backend: Option<String>,
    /// Force the capability tier down: f32, f16, subgroups, int8dot.
    #[arg(long, global = true, env = "WGPU_LLM_TIER")]
    tier: Option<String>,
}

impl GpuArgs {
    pub fn options(&self) -> Result<GpuOptions> {
        if let Some(k) = std::env::var("WGPU_LLM_MATMUL").ok().filter(|k| !k.is_empty()) {
            crate::kernels::matmul::Kernel::parse(&k).map_err(|e| Error::Other(format!("WGPU_LLM_MATMUL: {e}")))?;
        }
        if let Some(b) = std::env::var("WGPU_LLM_MEMORY_BUDGET").ok().filter(|b| !b.is_empty()) {
            crate::gpu::parse_bytes(&b).map_err(|e| Error::Other(format!("WGPU_LLM_MEMORY_BUDGET: {e}")))?;
        }
        Ok(GpuOptions {
            adapter: self.adapter.clone(),
            backend: self.backend.clone(),
            tier: self.tier.as_deref().map(Tier::parse).transpose()?,
            pipeline_cache: crate::gpu::pipeline_cache_from_env(Some(model_path::cache_dir().join("pipelines"))),
            ..GpuOptions::default()
        })
    }
    pub fn open(&self) -> Result<Gpu> {
        Gpu::new(&self.options()?)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// List every adapter with its backend, type, driver, tier, limits and features.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Generate text from a prompt (streams by default).
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        sample: SampleArgs,
        /// The prompt; repeat -p to generate for several prompts as one batch (printed in order).
        #[arg(short, long, required = true)]
        prompt: Vec<String>,
        /// Tokens to generate at most.
        #[arg(short = 'n', long, default_value_t = 128)]
        max_tokens: usize,
        /// Print one JSON object (ids, text, logprobs, timings) instead of streaming.
        #[arg(long)]
        json: bool,
        /// Alternatives recorded per generated token in --json.
        #[arg(long, default_value_t = 0)]
        top_logprobs: usize,
        /// Stop when this text appears (repeatable).
        #[arg(long)]
        stop: Vec<String>,
    },
    /// Chat interactively with the model's chat template; /reset, /exit.
    Chat {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        sample: SampleArgs,
        #[arg(long)]
        system: Option<String>,
        #[arg(short = 'n', long, default_value_t = 512)]
        max_tokens: usize,
        /// Keep only the last N turns (a turn: your message and the reply; the course keeps 3). A conversation
        /// longer than the context drops its oldest turns either way.
        #[arg(long)]
        history_turns: Option<usize>,
    },
    /// Sentence embeddings (BERT-family models such as all-MiniLM-L6-v2), one per input.
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        json: bool,
        /// Read one text per line from this file.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        texts: Vec<String>,
    },
    /// Finetune a pretrained encoder (BERT, all-MiniLM-L6-v2) into a sequence classifier (--task classify), or
    /// a decoder on instruction data with LoRA or every weight (--task lm).
    Finetune(Box<train::FinetuneArgs>),
    /// Fold a LoRA adapter into its base model: a model folder that needs no --lora.
    Merge(lora::MergeArgs),
    /// Pretrain a GPT-2 from scratch on text files (character vocabulary).
    Train(Box<train::PretrainArgs>),
    /// Label texts with a classifier folder (from finetune, or a transformers BertForSequenceClassification).
    Classify {
        #[arg(short, long)]
        model: std::path::PathBuf,
        /// Read one text per line from this file.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        texts: Vec<String>,
    },
    /// Accuracy, macro-F1, per-class scores and the confusion matrix of a classifier on labelled data.
    Evaluate {
        #[arg(short, long)]
        model: std::path::PathBuf,
        #[arg(long)]
        data: std::path::PathBuf,
        #[command(flatten)]
        columns: train::DataArgs,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long)]
        json: bool,
    },
    /// Serve the models over HTTP: /predict, the OpenAI-style /v1 API (streaming), a chat page at /.
    Serve {
        /// The chat model (default smollm2).
        #[arg(short, long)]
        model: Option<String>,
        /// A classifier folder for /predict (from finetune, or a transformers BertForSequenceClassification).
        #[arg(long)]
        classifier: Option<std::path::PathBuf>,
        /// An embedding model for /v1/embeddings (a name such as minilm, or a folder).
        #[arg(long)]
        embedder: Option<String>,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// 0 picks a free port (the address is printed on stderr).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Sequences decoded together (continuous batching; each holds a KV cache of --ctx positions), and
        /// texts in one classifier batch.
        #[arg(long, default_value_t = 8)]
        max_batch: usize,
        /// Requests waiting at most (429 beyond).
        #[arg(long, default_value_t = 64)]
        max_queue: usize,
        /// The chat model's context.
        #[arg(long, default_value_t = 2048)]
        ctx: usize,
        /// Seconds a request may take.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Require `Authorization: Bearer KEY` on every endpoint but /health.
        #[arg(long, env = "WGPU_LLM_API_KEY")]
        api_key: Option<String>,
        /// f32 or f16 (default: f16 where the adapter has it).
        #[arg(long)]
        dtype: Option<String>,
        /// The largest request body in bytes (413 beyond).
        #[arg(long, default_value_t = 1 << 20)]
        max_body: usize,
        /// A LoRA adapter folder (PEFT's format) merged into the chat model on load.
        #[arg(long)]
        lora: Option<std::path::PathBuf>,
    },
    /// Token ids of a text.
    Tokenize {
        #[arg(short, long)]
        model: Option<String>,
        text: String,
        #[arg(long)]
        json: bool,
    },
    /// Describe a model file or folder: format, metadata, tensors with shapes and stored types, parameters.
    Inspect {
        /// A .gguf or .safetensors file, a Hugging Face model folder, or a known model name (fetched on first use).
        model: String,
        /// Also list every tensor.
        #[arg(long)]
        tensors: bool,
        /// Print the memory plan a decoder needs on the GPU (weights, KV cache, activations) instead.
        #[arg(long)]
        memory: bool,
        /// With --memory: the context (KV cache length).
        #[arg(long, default_value_t = 2048)]
        ctx: usize,
        /// With --memory: f32, f16, int8 or w8a8.
        #[arg(long, default_value = "f16")]
        dtype: String,
        /// With --memory: JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Magnitude-prune the linear layers' weights and write the pruned model folder (f32 weights).
    Prune {
        /// A .gguf file, a Hugging Face model folder, or a known model name.
        #[arg(short, long)]
        model: Option<String>,
        /// The folder to write.
        #[arg(short, long)]
        out: std::path::PathBuf,
        /// Unstructured: the fraction of each weight tensor's smallest-magnitude entries to zero, in [0, 1).
        #[arg(long, required_unless_present = "pattern", conflicts_with = "pattern")]
        rate: Option<f64>,
        /// N:M structured: keep the N largest of every M consecutive weights along the input dim (e.g. 2:4).
        #[arg(long)]
        pattern: Option<String>,
        /// Replace the output folder if it exists.
        #[arg(long)]
        overwrite: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write an int8 model folder: int8 linear weights with block scales, the scheme in config.json.
    Quantize {
        /// A .gguf file, a Hugging Face model folder, or a known model name.
        #[arg(short, long)]
        model: Option<String>,
        /// The folder to write.
        #[arg(short, long)]
        out: std::path::PathBuf,
        /// weight-only (float activations), dynamic (activations quantized on the fly) or static
        /// (activation scales calibrated on --calibration text).
        #[arg(long, default_value = "dynamic")]
        mode: String,
        /// Calibration text (static mode): UTF-8.
        #[arg(long)]
        calibration: Option<std::path::PathBuf>,
        /// Calibration windows (decoders) or lines (encoders) to run.
        #[arg(long, default_value_t = 8)]
        calib_samples: usize,
        /// Tokens per calibration window (decoders).
        #[arg(long, default_value_t = 128)]
        calib_len: usize,
        /// Static scales: this percentile of the calibration tokens' per-block maxima (100 = the maximum;
        /// lower clips the rare tokens with massive activations).
        #[arg(long, default_value_t = 100.0)]
        calib_percentile: f64,
        /// Static mode, Llama family: smooth outlier channels into the weights first (SmoothQuant) with
        /// migration strength α in [0, 1] (default: no smoothing).
        #[arg(long)]
        smooth: Option<f64>,
        /// Static mode: comma-separated fragments of layer names whose inputs are quantized per token on the
        /// fly instead of with calibrated scales (default: mlp.down_proj for the Llama family, none for
        /// others; `none` for fully static).
        #[arg(long)]
        dynamic: Option<String>,
        /// Comma-separated fragments of linear layer names kept float (default: lm_head; `none` for none).
        #[arg(long)]
        keep: Option<String>,
        /// Replace the output folder if it exists.
        #[arg(long)]
        overwrite: bool,
        #[arg(long)]
        json: bool,
    },
    /// Perplexity of a text file in sliding windows (as transformers' perplexity guide).
    Perplexity {
        /// A .gguf file, a Hugging Face model folder, or a known model name (default: smollm2).
        #[arg(short, long)]
        model: Option<String>,
        /// The text file.
        #[arg(short, long)]
        file: std::path::PathBuf,
        /// Window length in tokens.
        #[arg(long, default_value_t = 256)]
        ctx: usize,
        /// Tokens between window starts (default: --ctx, windows that do not overlap).
        #[arg(long)]
        stride: Option<usize>,
        /// Score only the first T tokens of the text (the software adapter prefills a few tokens/s).
        #[arg(long)]
        max_tokens: Option<usize>,
        /// f32, f16, int8 or w8a8 (as generate).
        #[arg(long)]
        dtype: Option<String>,
        /// With --dtype int8|w8a8: linear layers kept float (as generate; default lm_head, `none` for none).
        #[arg(long)]
        keep: Option<String>,
        /// A LoRA adapter folder (PEFT's format) merged into the weights on load.
        #[arg(long)]
        lora: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Model speed: load, prefill at 64 and 256 tokens, time to first token, decode, memory.
    Model {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        json: bool,
        /// Tokens to decode.
        #[arg(short = 'n', long, default_value_t = 32)]
        tokens: usize,
    },
    /// The server under 1, 4, 8 and 16 concurrent streaming clients: tokens/s, time to first token and
    /// inter-token latency (p50, p99), errors.
    Serve {
        /// The chat model (serve's default when absent).
        #[arg(short = 'm', long)]
        model: Option<String>,
        #[arg(long)]
        json: bool,
        /// Concurrent streams, comma-separated.
        #[arg(long, default_value = "1,4,8,16")]
        levels: String,
        /// Requests each stream makes, one after the other.
        #[arg(long, default_value_t = 2)]
        requests: usize,
        /// max_tokens of each request.
        #[arg(short = 'n', long, default_value_t = 32)]
        tokens: usize,
        #[arg(long, default_value_t = 512)]
        ctx: usize,
        /// serve's --dtype.
        #[arg(long)]
        dtype: Option<String>,
    },
    /// Training throughput: the character GPT and MiniLM finetuning recipes (dispatches, memory, profile).
    Train {
        #[arg(long)]
        json: bool,
        /// Timed steps per recipe.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// char-gpt, minilm, all (those two), smollm2-lora[-f16|-int8] (the frozen base's storage; f32 without
        /// a suffix) or smollm2-full (finetune --task lm on SmolLM2, batch 4 × --len).
        #[arg(long, default_value = "all")]
        recipe: String,
        /// MiniLM's padded length, or the decoder's sequence length.
        #[arg(long, default_value_t = 64)]
        len: usize,
    },
    /// Validate each kernel against the CPU reference, then time it.
    Kernels {
        #[arg(long)]
        json: bool,
        /// Only shapes whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Timed repetitions per shape.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Every case at small shapes, one timed run each (seconds on a software adapter): a check that
        /// every case still validates, not a measurement.
        #[arg(long)]
        quick: bool,
    },
    /// Everything on the GPU at hand: ceilings (copy bandwidth, best GEMM and GEMV, dispatch and submission
    /// costs), every kernel, SmolLM2 per dtype, MiniLM, training and serving, each figure the median of
    /// --repeat runs with its spread and % of its ceiling. Writes bench.json, bench.md and SVG charts to -o.
    All {
        /// The report as JSON on stdout (else its Markdown).
        #[arg(long)]
        json: bool,
        /// Write bench.json, bench.md and the charts here.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Runs per figure (default 3; 1 with --quick).
        #[arg(long)]
        repeat: Option<usize>,
        /// A subset at small sizes: kernels at small shapes, SmolLM2 f16 only, short training, no serving.
        #[arg(long)]
        quick: bool,
    },
    /// Two `bench all` reports side by side: each figure, the ratio B/A, and whether the difference exceeds
    /// both runs' spreads.
    Compare {
        a: PathBuf,
        b: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Devices { json } => devices(&cli.gpu, json),
        Cmd::Inspect { model, tensors: _, memory: true, ctx, dtype, json } => {
            let path = model_path::resolve(Some(&model))?;
            let prec = generate::parse_precision(&dtype, crate::tensor::DType::F16, None)?;
            let plan = crate::session::preflight::MemoryPlan::of(&path, &prec, ctx)?;
            if json {
                println!("{}", serde_json::to_string(&plan).unwrap_or_default());
            } else {
                let mib = |b: u64| b as f64 / (1 << 20) as f64;
                println!("{}: {} at --ctx {}", path.display(), plan.precision, plan.ctx);
                println!("  weights             {:>10.1} MiB", mib(plan.weights));
                println!("  KV cache            {:>10.1} MiB", mib(plan.kv_cache));
                println!("  decode activations  {:>10.1} MiB", mib(plan.decode_activations));
                println!(
                    "  prefill activations {:>10.1} MiB (a {}-token prompt)",
                    mib(plan.prefill_activations),
                    plan.ctx
                );
                println!("  total               {:>10.1} MiB", mib(plan.total));
                println!(
                    "  largest tensor      {} ({:.1} MiB, one buffer)",
                    plan.largest_tensor.0,
                    mib(plan.largest_tensor.1)
                );
                println!("  (adapters that read weights through textures, such as CPU ones, add texture copies of the linear weights)");
            }
            Ok(())
        }
        Cmd::Inspect { model, tensors, .. } => inspect(&model_path::resolve(Some(&model))?, tensors),
        Cmd::Serve {
            model,
            classifier,
            embedder,
            host,
            port,
            max_batch,
            max_queue,
            ctx,
            timeout,
            api_key,
            dtype,
            max_body,
            lora,
        } => {
            if ctx == 0 || max_batch == 0 || timeout == 0 {
                return Err(Error::Other("--ctx, --max-batch and --timeout must be at least 1".into()));
            }
            let load = crate::serve::Load {
                gpu: cli.gpu.options()?,
                chat: resolve(model.as_deref())?,
                ctx,
                precision: dtype,
                classifier,
                embedder: embedder.as_deref().map(|e| resolve(Some(e))).transpose()?,
                max_batch,
                lora: lora.as_deref().map(crate::train::lora::Adapter::load).transpose()?,
            };
            crate::serve::run(crate::serve::Options {
                load,
                host,
                port,
                max_queue,
                timeout: std::time::Duration::from_secs(timeout),
                api_key,
                max_body,
            })
        }
        Cmd::Train(args) => train::run_pretrain(&|| cli.gpu.open(), &args),
        Cmd::Finetune(args) => train::run_finetune(&|| cli.gpu.open(), &args),
        Cmd::Merge(args) => lora::run_merge(&args),
        Cmd::Classify { model, file, json, batch_size, texts } => {
            let gpu = cli.gpu.open()?;
            train::run_classify(&gpu, &model, &texts, file.as_deref(), batch_size, json)
        }
        Cmd::Evaluate { model, data, columns, batch_size, json } => {
            train::run_evaluate(&|| cli.gpu.open(), &model, &data, &columns, batch_size, json)
        }
        Cmd::Embed { model, json, file, texts } => {
            let gpu = cli.gpu.open()?;
            generate::run_embed(&gpu, &model, file.as_deref(), &texts, json)
        }
        Cmd::Generate { model, sample, prompt, max_tokens, json, top_logprobs, stop } => {
            let gpu = cli.gpu.open()?;
            if prompt.len() > 1 {
                generate::run_generate_batch(&gpu, &model, &sample, &prompt, max_tokens, json, &stop)
            } else {
                generate::run_generate(&gpu, &model, &sample, &prompt[0], max_tokens, json, top_logprobs, &stop)
            }
        }
        Cmd::Chat { model, sample, system, max_tokens, history_turns } => {
            if history_turns == Some(0) {
                return Err(Error::Other("--history-turns 0: must be at least 1".into()));
            }
            let gpu = cli.gpu.open()?;
            generate::run_chat(&gpu, &model, &sample, system.as_deref(), max_tokens, history_turns)
        }
        Cmd::Prune { model, out, rate, pattern, overwrite, json } => {
            prune::run(model.as_deref(), &out, rate, pattern.as_deref(), overwrite, json)
        }
        Cmd::Quantize {
            model,
            out,
            mode,
            calibration,
            calib_samples,
            calib_len,
            calib_percentile,
            smooth,
            dynamic,
            keep,
            overwrite,
            json,
        } => {
            let args = quantize::Args {
                model: model.as_deref(),
                out: &out,
                mode: &mode,
                calibration: calibration.as_deref(),
                calib_samples,
                calib_len,
                calib_percentile,
                smooth,
                dynamic: dynamic.as_deref(),
                keep: keep.as_deref(),
                overwrite,
                json,
            };
            quantize::run(&|| cli.gpu.open(), args)
        }
        Cmd::Perplexity { model, file, ctx, stride, max_tokens, dtype, keep, lora, json } => {
            let model = ModelArgs { model, dtype, keep, ctx, lora, no_warmup: true };
            let args = perplexity::Args { model, file: &file, stride, max_tokens, json };
            perplexity::run(&|| cli.gpu.open(), args)
        }
        Cmd::Tokenize { model, text, json } => generate::run_tokenize(model.as_deref(), &text, json),
        Cmd::Bench { what: BenchCmd::Model { model, json, tokens } } => {
            let gpu = cli.gpu.open()?;
            let r = crate::bench::model::run(&gpu, &model.path()?, model.precision(&gpu)?, tokens)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                println!("model {} on {} ({})", r.model, r.adapter, r.dtype);
                println!("  load {:.2} s | GPU memory {:.1} MiB", r.load_secs, r.gpu_memory_bytes as f64 / 1048576.0);
                println!(
                    "  prefill: {:.1} tok/s at 64 tokens, {:.1} tok/s at 256",
                    r.prefill_64_tokens_per_sec, r.prefill_256_tokens_per_sec
                );
                println!("  time to first token (64-token prompt): {:.2} s", r.time_to_first_token_secs);
                println!(
                    "  decode: {:.2} tok/s over {} tokens | {} dispatches/token | {:.1} MB weights/token ({:.2} GB/s)",
                    r.decode_tokens_per_sec,
                    r.decode_tokens,
                    r.decode_dispatches_per_token,
                    r.weight_bytes_per_token as f64 / 1e6,
                    r.decode_weight_gbps
                );
                for (what, profile) in [
                    ("one decode step", &r.decode_profile),
                    ("one decode step by kernel", &r.decode_kernels),
                    ("one prefill of 256 tokens", &r.prefill_256_profile),
                ] {
                    let total: f64 = profile.iter().map(|p| p.1).sum();
                    println!("  {what} on the GPU: {:.1} ms", total / 1e3);
                    for (op, us, n) in profile {
                        println!("    {op:<20} {:>9.1} ms {:>5.1}% ({n} dispatches)", us / 1e3, 100.0 * us / total);
                    }
                }
            }
            Ok(())
        }
        Cmd::Bench { what: BenchCmd::Serve { model, json, levels, requests, tokens, ctx, dtype } } => {
            let levels: Vec<usize> = levels
                .split(',')
                .map(|l| l.trim().parse().ok().filter(|&n: &usize| n > 0))
                .collect::<Option<_>>()
                .ok_or_else(|| Error::Other(format!("--levels {levels}: positive numbers, comma-separated")))?;
            if requests == 0 || tokens == 0 || ctx < 2 {
                return Err(Error::Other("bench serve: --requests and -n at least 1, --ctx at least 2".into()));
            }
            let serve_args = dtype.map(|d| vec!["--dtype".to_string(), d]).unwrap_or_default();
            let o = crate::bench::serve::Options { model, levels, requests, max_tokens: tokens, ctx, serve_args };
            let r = crate::bench::serve::run(&o, &|m| eprintln!("bench serve: {m}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                return Ok(());
            }
            println!("serve {} (max_tokens {}), streaming clients", r.model, r.max_tokens);
            println!("  streams  requests  errors  tokens/s  decode tok/s  batch  TTFT p50/p99 (s)  ITL p50/p99 (ms)");
            for l in &r.levels {
                println!(
                    "  {:>7}  {:>8}  {:>6}  {:>8.2}  {:>12.2}  {:>5.1}  {:>7.2} / {:<7.2}  {:>7.0} / {:<7.0}",
                    l.streams,
                    l.requests,
                    l.errors,
                    l.tokens_per_sec,
                    l.decode_tokens_per_sec,
                    l.mean_batch,
                    l.ttft_p50_secs,
                    l.ttft_p99_secs,
                    l.itl_p50_secs * 1e3,
                    l.itl_p99_secs * 1e3
                );
            }
            if let (Some(s), Some(d)) = (r.speedup_8_over_1, r.decode_speedup_8_over_1) {
                println!("  8 streams give {s:.2}x the tokens/s of one ({d:.2}x the decode tokens/s)");
            }
            Ok(())
        }
        Cmd::Bench { what: BenchCmd::Train { json, steps, recipe, len } } => {
            let recipes =
                ["all", "char-gpt", "minilm", "smollm2-lora", "smollm2-lora-f16", "smollm2-lora-int8", "smollm2-full"];
            if !recipes.contains(&recipe.as_str()) || steps == 0 || len < 2 {
                return Err(Error::Other(format!(
                    "bench train: --recipe {recipe} ({}), --steps ≥ 1, --len ≥ 2",
                    recipes.join(", ")
                )));
            }
            let gpu = cli.gpu.open()?;
            let mut out = vec![];
            if recipe == "all" || recipe == "char-gpt" {
                out.push(crate::bench::train::char_gpt(&gpu, steps)?);
            }
            if recipe == "all" || recipe == "minilm" {
                out.push(crate::bench::train::minilm(&gpu, &resolve(Some("minilm"))?, steps, len)?);
            }
            if let Some(how) = recipe.strip_prefix("smollm2-") {
                let model = resolve(Some("smollm2"))?;
                let lora = match how.strip_prefix("lora") {
                    Some(base) => Some(crate::train::sft::Base::parse(base.strip_prefix('-').unwrap_or("f32"))?),
                    None => None,
                };
                out.push(crate::bench::train::decoder(&gpu, &model, lora, steps, 4, len)?);
            }
            for r in &out {
                if json {
                    println!("{}", serde_json::to_string(r).unwrap_or_default());
                    continue;
                }
                println!("{} on {}", r.recipe, r.adapter);
                println!(
                    "  {:.1} {} | step {:.3} s | {} dispatches/step | GPU memory {:.1} MiB",
                    r.per_sec,
                    r.unit,
                    r.step_secs,
                    r.dispatches_per_step,
                    r.gpu_memory_bytes as f64 / 1048576.0
                );
                for (op, us, n) in r.profile.iter().take(12) {
                    println!("    {op:<24} {:>9.1} ms ({n} dispatches)", us / 1e3);
                }
            }
            Ok(())
        }
        Cmd::Bench { what: BenchCmd::All { json, out, repeat, quick } } => {
            let repeat = repeat.unwrap_or(if quick { 1 } else { 3 });
            if repeat == 0 {
                return Err(Error::Other("--repeat 0: at least 1".into()));
            }
            let o = crate::bench::all::Options {
                quick,
                repeat,
                chat_model: resolve(Some("smollm2"))?,
                encoder_model: resolve(Some("minilm"))?,
                serve_levels: if quick { vec![] } else { vec![1, 4] },
            };
            let gpu = cli.gpu.open()?;
            let stages = crate::bench::all::stages(&o);
            let pb = train::bar((stages.len() * repeat) as u64, false);
            pb.set_prefix("bench all");
            let r = crate::bench::all::run(&gpu, &o, &mut |s| {
                pb.inc(1);
                pb.set_message(s.to_string());
            })?;
            pb.finish_and_clear();
            let charts = match &out {
                Some(dir) => crate::bench::all::write(dir, &r)?,
                None => vec![],
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                let names: Vec<&str> = charts.iter().map(String::as_str).collect();
                print!("{}", r.markdown(&names));
            }
            if let Some(dir) = &out {
                eprintln!("bench all: wrote {} (bench.json, bench.md, {})", dir.display(), charts.join(", "));
            }
            Ok(())
        }
        Cmd::Bench { what: BenchCmd::Compare { a, b, json } } => {
            use crate::bench::report;
            let (ra, rb) = (report::read(&a)?, report::read(&b)?);
            let rows = report::compare(&ra, &rb);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
            } else {
                print!("{}", report::compare_markdown(&ra, &rb, &rows));
            }
            Ok(())
        }
        Cmd::Bench { what: BenchCmd::Kernels { json, filter, reps, quick } } => {
            let gpu = cli.gpu.open()?;
            let reps = if quick { 1 } else { reps };
            let rows = crate::bench::kernels(&gpu, filter.as_deref(), reps, quick)?;
            crate::bench::print(&gpu, &rows, json);
            Ok(())
        }
    }
}

fn devices(args: &GpuArgs, json: bool) -> Result<()> {
    let list = list_adapters(args.backend.as_deref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
        return Ok(());
    }
    if list.is_empty() {
        println!("no adapters found (on Linux without a GPU: apt-get install mesa-vulkan-drivers libvulkan1)");
    }
    for (i, a) in list.iter().enumerate() {
        println!("[{i}] {} — {} {}, driver {} {}", a.name, a.backend, a.device_type, a.driver, a.driver_info);
        println!(
            "    tier {} | f16 {} | subgroups {} (size {}–{}) | timestamps {} | immediates {}",
            a.tier, a.f16, a.subgroups, a.subgroup_min_size, a.subgroup_max_size, a.timestamps, a.immediates
        );
        println!(
            "    max storage binding {} MiB | max buffer {} MiB | workgroup storage {} KiB | invocations/workgroup {}",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup
        );
        println!(
            "    kernels: texture reads {} | matmul {} | gemv_vec4 {} (env WGPU_LLM_TEXTURE_WEIGHTS, \
             WGPU_LLM_MATMUL, WGPU_LLM_GEMV)",
            a.texture_reads, a.matmul, a.gemv_vec4
        );
    }
    Ok(())
}

fn inspect(path: &std::path::Path, tensors: bool) -> Result<()> {
    use crate::loader::MetaValue;
    let store = crate::loader::open(path)?;
    println!("{}: {:?}, {} tensors", path.display(), store.format(), store.len());
    for (k, v) in store.metadata() {
        let shown = match v {
            MetaValue::Array(a) => format!("[{} × {}]", a.len(), a.first().map_or("?", |x| x.type_name())),
            MetaValue::Str(s) if s.len() > 120 => {
                format!("{:?}… ({} bytes)", &s[..s.floor_char_boundary(100)], s.len())
            }
            v => format!("{v:?}"),
        };
        println!("  {k} = {shown}");
    }
    let mut params = 0usize;
    let mut by_type: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for e in store.entries() {
        params += e.numel();
        let t = by_type.entry(e.dtype.name()).or_default();
        t.0 += 1;
        t.1 += e.numel();
        if tensors {
            println!("  tensor {} {:?} {}", e.name, e.shape, e.dtype.name());
        }
    }
    println!("parameters: {params} ({:.1} M)", params as f64 / 1e6);
    for (t, (n, p)) in by_type {
        println!("  {t}: {n} tensors, {p} values");
    }
    Ok(())
}
