//! The endpoints: request parsing and checks (a JSON error for anything wrong), the OpenAI response shapes,
//! streaming, auth and per-request logging.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::worker::{Event, GenJob, Job, Prompt};
use super::{ApiError, App};
use crate::sample::SamplerConfig;

type ApiResult = std::result::Result<Response, ApiError>;

const PAGE: &str = include_str!("chat.html");

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/predict", post(predict))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Auth (every endpoint but /health with --api-key), the body limit, and one log line per request.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = match &app.opts.api_key {
        Some(key) if path != "/health" => {
            let ok = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.strip_prefix("Bearer ") == Some(key.as_str()));
            if ok {
                next.run(req).await
            } else {
                ApiError(StatusCode::UNAUTHORIZED, "a valid Authorization: Bearer key is required".into())
                    .into_response()
            }
        }
        _ => next.run(req).await,
    };
    let status = resp.status().as_u16();
    app.metrics.record(&path, status);
    log::info!("{method} {path} {status} {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    resp
}

/// The body as JSON: 413 beyond the limit, 400 for anything that is not a JSON object.
async fn body_json(app: &App, body: Body) -> std::result::Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(body, app.opts.max_body).await.map_err(|_| {
        ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body exceeds {} bytes", app.opts.max_body))
    })?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad("the body must be a JSON object"));
    }
    Ok(v)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    let mut names = vec![app.loaded.chat.clone()];
    names.extend(app.loaded.classifier.iter().map(|c| c.0.clone()));
    names.extend(app.loaded.embedder.iter().cloned());
    let data: Vec<Value> =
        names.iter().map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "wgpu-llm"})).collect();
    Json(json!({"object": "list", "data": data}))
}

/// `{"text": "..."}` or `{"text": ["...", ...]}`: the course's response (`predictions`, the softmax rows in
/// label order) with `label`, `confidence` and `probabilities` by name (lists of them for a list).
async fn predict(State(app): State<Arc<App>>, body: Body) -> ApiResult {
    if app.loaded.classifier.is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, "no classifier is loaded (start serve with --classifier)".into()));
    }
    let v = body_json(&app, body).await?;
    let (texts, list) = predict_texts(&v)?;
    let (tx, rx) = oneshot::channel();
    app.submit(Job::Predict { texts, reply: tx })?;
    let rows = wait(&app, rx).await?;
    let labels = &app.loaded.classifier.as_ref().expect("checked above").1;
    let probs =
        |r: &Value| -> Vec<f64> { labels.iter().map(|l| r["probabilities"][l].as_f64().unwrap_or(0.0)).collect() };
    let predictions: Vec<Vec<f64>> = rows.iter().map(probs).collect();
    let field = |k: &str| -> Value {
        if list {
            Value::Array(rows.iter().map(|r| r[k].clone()).collect())
        } else {
            rows[0][k].clone()
        }
    };
    Ok(Json(json!({
        "predictions": predictions,
        "label": field("label"),
        "confidence": field("confidence"),
        "probabilities": field("probabilities"),
    }))
    .into_response())
}

/// /predict's texts, and whether they came as a list.
pub(crate) fn predict_texts(v: &Value) -> std::result::Result<(Vec<String>, bool), ApiError> {
    let no_text = || ApiError::bad("No text provided");
    match &v["text"] {
        Value::String(s) if !s.trim().is_empty() => Ok((vec![s.clone()], false)),
        Value::Array(a) if !a.is_empty() => {
            let t: Option<Vec<String>> =
                a.iter().map(|x| x.as_str().filter(|s| !s.trim().is_empty()).map(str::to_string)).collect();
            Ok((t.ok_or_else(|| ApiError::bad("every text must be a non-empty string"))?, true))
        }
        Value::Null | Value::String(_) | Value::Array(_) => Err(no_text()),
        _ => Err(ApiError::bad("text must be a string or a list of strings")),
    }
}

/// Wait for a worker reply within the request timeout.
async fn wait<T>(app: &App, rx: oneshot::Receiver<crate::Result<T>>) -> std::result::Result<T, ApiError> {
    match tokio::time::timeout(app.opts.timeout, rx).await {
        Err(_) => Err(ApiError(StatusCode::GATEWAY_TIMEOUT, "the request took longer than --timeout".into())),
        Ok(Err(_)) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, "the model worker stopped".into())),
        Ok(Ok(Err(e))) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}

async fn embeddings(State(app): State<Arc<App>>, body: Body) -> ApiResult {
    let Some(name) = app.loaded.embedder.clone() else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "no embedding model is loaded (start serve with --embedder)".into(),
        ));
    };
    let v = body_json(&app, body).await?;
    let texts: Vec<String> = match &v["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad("input must be a string or a list of strings"))?,
        _ => return Err(ApiError::bad("input must be a string or a non-empty list of strings")),
    };
    let (tx, rx) = oneshot::channel();
    app.submit(Job::Embed { texts, reply: tx })?;
    let (embs, tokens) = wait(&app, rx).await?;
    let data: Vec<Value> =
        embs.iter().enumerate().map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e})).collect();
    Ok(Json(json!({"object": "list", "data": data, "model": name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn num(v: &Value, k: &str, default: f64, lo: f64, hi: f64) -> std::result::Result<f64, ApiError> {
    match &v[k] {
        Value::Null => Ok(default),
        x => match x.as_f64() {
            Some(f) if (lo..=hi).contains(&f) => Ok(f),
            _ => Err(ApiError::bad(format!("{k} must be a number in [{lo}, {hi}], got {x}"))),
        },
    }
}

/// The sampling, length, stop and logprob fields of a completion request, checked.
pub(crate) struct GenParams {
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    pub stops: Vec<String>,
    pub logprobs: Option<usize>,
}

/// A completion request's job and the receiver of its events.
fn gen_job(
    app: &App,
    v: &Value,
    prompt: Prompt,
    chat: bool,
) -> std::result::Result<(GenJob, mpsc::UnboundedReceiver<Event>), ApiError> {
    let GenParams { max_tokens, sampler, stops, logprobs } = gen_params(v, chat)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let deadline = Instant::now() + app.opts.timeout;
    Ok((GenJob { prompt, max_tokens, sampler, stops, logprobs, deadline, events: tx }, rx))
}

pub(crate) fn gen_params(v: &Value, chat: bool) -> std::result::Result<GenParams, ApiError> {
    if v["n"].as_u64().is_some_and(|n| n != 1) {
        return Err(ApiError::bad("only n = 1 is supported"));
    }
    let max_tokens = num(
        v,
        if v["max_completion_tokens"].is_null() { "max_tokens" } else { "max_completion_tokens" },
        256.0,
        1.0,
        1e6,
    )? as usize;
    let stops: Vec<String> = match &v["stop"] {
        Value::Null => vec![],
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad("stop must be a string or a list of strings"))?,
        _ => return Err(ApiError::bad("stop must be a string or a list of strings")),
    };
    let logprobs = if chat {
        match v["logprobs"].as_bool() {
            Some(true) => Some(num(v, "top_logprobs", 0.0, 0.0, 20.0)? as usize),
            _ => None,
        }
    } else {
        v["logprobs"].as_u64().map(|k| k.min(20) as usize)
    };
    let sampler = SamplerConfig {
        temperature: num(v, "temperature", 1.0, 0.0, 2.0)? as f32,
        top_p: num(v, "top_p", 1.0, 0.0, 1.0)? as f32,
        top_k: num(v, "top_k", 0.0, 0.0, 1e6)? as usize,
        min_p: num(v, "min_p", 0.0, 0.0, 1.0)? as f32,
        repetition_penalty: num(v, "repetition_penalty", 1.0, 0.01, 10.0)? as f32,
        seed: num(v, "seed", 0.0, 0.0, 1.8e19)? as u64,
    };
    Ok(GenParams { max_tokens, sampler, stops, logprobs })
}

async fn chat(State(app): State<Arc<App>>, body: Body) -> ApiResult {
    let v = body_json(&app, body).await?;
    let pairs = chat_messages(&v)?;
    let (job, rx) = gen_job(&app, &v, Prompt::Chat(pairs), true)?;
    respond(app, v["stream"].as_bool().unwrap_or(false), rx, job, true).await
}

/// A chat request's messages as (role, content), developer messages as system ones.
pub(crate) fn chat_messages(v: &Value) -> std::result::Result<Vec<(String, String)>, ApiError> {
    let msgs = v["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("messages must be a non-empty list"))?;
    let mut pairs = vec![];
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().ok_or_else(|| ApiError::bad(format!("messages[{i}].role must be a string")))?;
        if !["system", "user", "assistant", "developer", "tool"].contains(&role) {
            return Err(ApiError::bad(format!("messages[{i}].role {role:?} is not system, user or assistant")));
        }
        let content = match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
            _ => return Err(ApiError::bad(format!("messages[{i}].content must be a string"))),
        };
        pairs.push((if role == "developer" { "system".into() } else { role.to_string() }, content));
    }
    Ok(pairs)
}

async fn completions(State(app): State<Arc<App>>, body: Body) -> ApiResult {
    let v = body_json(&app, body).await?;
    let prompt = match &v["prompt"] {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_string(),
        _ => return Err(ApiError::bad("prompt must be a string")),
    };
    let (job, rx) = gen_job(&app, &v, Prompt::Text(prompt), false)?;
    respond(app, v["stream"].as_bool().unwrap_or(false), rx, job, false).await
}

/// Run a generation: one JSON object, or a stream of chunks ending with `data: [DONE]`.
async fn respond(
    app: Arc<App>,
    stream: bool,
    mut rx: mpsc::UnboundedReceiver<Event>,
    job: GenJob,
    chat: bool,
) -> ApiResult {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{}-{}-{n}", if chat { "chatcmpl" } else { "cmpl" }, now());
    let model = app.loaded.chat.clone();
    let created = now();
    app.submit(Job::Generate(job))?;
    let object = if chat { "chat.completion" } else { "text_completion" };
    if !stream {
        let (mut text, mut lps) = (String::new(), vec![]);
        loop {
            let ev = tokio::time::timeout(app.opts.timeout, rx.recv())
                .await
                .map_err(|_| ApiError(StatusCode::GATEWAY_TIMEOUT, "the request took longer than --timeout".into()))?;
            match ev {
                Some(Event::Delta { text: t, logprobs }) => {
                    text += &t;
                    lps.extend(logprobs);
                }
                Some(Event::Done { finish_reason, prompt_tokens, completion_tokens }) => {
                    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
                    let choice = if chat {
                        json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason,
                               "logprobs": if lps.is_empty() { Value::Null } else { json!({"content": lps}) }})
                    } else {
                        json!({"index": 0, "text": text, "finish_reason": finish_reason,
                               "logprobs": if lps.is_empty() { Value::Null } else { json!({"content": lps}) }})
                    };
                    return Ok(Json(json!({"id": id, "object": object, "created": created, "model": model,
                        "choices": [choice], "usage": usage}))
                    .into_response());
                }
                Some(Event::Rejected(e)) => return Err(ApiError::bad(e)),
                Some(Event::Error(e)) => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e)),
                None => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, "the model worker stopped".into())),
            }
        }
    }
    // The first event decides the status: a request the worker rejects is a 400, not an error inside a 200
    // stream.
    let head = tokio::time::timeout(app.opts.timeout, rx.recv())
        .await
        .map_err(|_| ApiError(StatusCode::GATEWAY_TIMEOUT, "the request took longer than --timeout".into()))?;
    match head {
        Some(Event::Rejected(e)) => return Err(ApiError::bad(e)),
        Some(Event::Error(e)) => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e)),
        None => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, "the model worker stopped".into())),
        Some(_) => {}
    }
    let chunk_object = if chat { "chat.completion.chunk" } else { "text_completion" };
    let first = std::sync::atomic::AtomicBool::new(true);
    let chunk = move |delta: Value, finish: Value, extra: Option<Value>| -> Value {
        let choice = if chat {
            let mut d = delta.clone();
            if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                d["role"] = "assistant".into();
            }
            json!({"index": 0, "delta": d, "finish_reason": finish, "logprobs": extra.unwrap_or(Value::Null)})
        } else {
            json!({"index": 0, "text": delta["content"], "finish_reason": finish, "logprobs": extra.unwrap_or(Value::Null)})
        };
        json!({"id": id, "object": chunk_object, "created": created, "model": model, "choices": [choice]})
    };
    let s = futures_util::stream::unfold((rx, head, false, chunk), |(mut rx, head, done, chunk)| async move {
        if done {
            return None;
        }
        let next = match head {
            Some(ev) => Some(ev),
            None => rx.recv().await,
        };
        let ev = match next {
            Some(Event::Delta { text, logprobs }) => {
                let lp = if logprobs.is_empty() { None } else { Some(json!({"content": logprobs})) };
                sse(chunk(json!({"content": text}), Value::Null, lp))
            }
            Some(Event::Done { finish_reason, prompt_tokens, completion_tokens }) => {
                // The last chunk carries the finish reason and the usage.
                let mut v = chunk(json!({}), finish_reason.into(), None);
                v["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens});
                return Some((Ok::<_, Infallible>(sse(v)), (rx, None, true, chunk)));
            }
            Some(Event::Error(msg) | Event::Rejected(msg)) => sse(json!({"error": msg})),
            None => return None,
        };
        Some((Ok(ev), (rx, None, false, chunk)))
    });
    let done = futures_util::stream::once(async { Ok::<_, Infallible>(SseEvent::default().data("[DONE]")) });
    use futures_util::StreamExt;
    Ok(Sse::new(s.chain(done)).keep_alive(KeepAlive::default()).into_response())
}

fn sse(v: Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

/// A short OpenAPI description of the endpoints (for schema-driven clients and fuzzers).
async fn openapi(_h: HeaderMap) -> Json<Value> {
    let obj = |props: Value, req: &[&str]| json!({"type": "object", "properties": props, "required": req});
    let msg = obj(
        json!({"role": {"type": "string", "enum": ["system", "user", "assistant"]}, "content": {"type": "string"}}),
        &["role", "content"],
    );
    let ok = json!({"200": {"description": "OK"}, "400": {"description": "bad request"}});
    let post = |schema: Value| json!({"post": {"requestBody": {"required": true, "content": {"application/json": {"schema": schema}}}, "responses": ok.clone()}});
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "wgpu-llm serve", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/health": {"get": {"responses": {"200": {"description": "OK"}}}},
            "/v1/models": {"get": {"responses": {"200": {"description": "OK"}}}},
            "/predict": post(obj(json!({"text": {"type": "string", "minLength": 1}}), &["text"])),
            "/v1/chat/completions": post(obj(json!({"model": {"type": "string"}, "messages": {"type": "array", "items": msg, "minItems": 1},
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": 16}, "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1}, "stream": {"type": "boolean"}, "seed": {"type": "integer", "minimum": 0}}), &["messages"])),
            "/v1/completions": post(obj(json!({"model": {"type": "string"}, "prompt": {"type": "string", "minLength": 1},
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": 16}}), &["prompt"])),
            "/v1/embeddings": post(obj(json!({"model": {"type": "string"}, "input": {"type": "string", "minLength": 1}}), &["input"])),
        }
    }))
}
