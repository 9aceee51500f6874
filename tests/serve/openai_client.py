#!/usr/bin/env python3
"""The official openai Python client against a running `wgpu-llm serve` (tests/serve.rs starts it and passes
its base URL): chat (plain and streamed), completions, embeddings and models parse into the client's objects
with the fields it expects. Prints "ok" on success; any failure raises."""
import sys

from openai import OpenAI

base = sys.argv[1]
c = OpenAI(base_url=base + "/v1", api_key="none")
models = c.models.list()
assert len(models.data) >= 1 and models.data[0].id, models
r = c.chat.completions.create(model="anything", messages=[{"role": "user", "content": "Say hi"}],
                              max_tokens=6, temperature=0)
assert r.choices[0].message.role == "assistant" and r.choices[0].message.content, r
assert r.usage.completion_tokens >= 1 and r.usage.prompt_tokens > 0, r.usage
text = ""
for chunk in c.chat.completions.create(model="anything", messages=[{"role": "user", "content": "Say hi"}],
                                       max_tokens=6, temperature=0, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
assert text == r.choices[0].message.content, (text, r.choices[0].message.content)
comp = c.completions.create(model="anything", prompt="The capital of France is", max_tokens=4, temperature=0)
assert comp.choices[0].text, comp
emb = c.embeddings.create(model="anything", input=["hello world", "goodbye"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384, len(emb.data[0].embedding)
print("ok")
