"""The language-model service: engine, scheduler, embedder and the client the bot talks to.

Only this package imports torch and transformers, and only lazily (`lm_service.engine` loads
them in its own thread), so importing `lm_service.api` or `lm_service.client` stays cheap.

- `api`: requests, results, errors and the `LMClient` protocol;
- `client.create_lm_client(settings, redis=None)`: picks the backend;
- `local.InProcessLMClient`: the models in this process (engine thread, asyncio face);
  `streaming.EventClient`: generate/stream over a backend's events (local and remote);
- `engine`: schedule → execute → update loop, embeddings between steps; `loading`: what it
  loads; `admission`: who joins the batch, prefill, shared prefixes; `batch`: the decode step;
- `scheduler`: priorities, deadlines, the bounded queue (no torch);
- `llama/`: the fast Llama-family runner (prepacked bf16 weights, slot KV cache);
  `fallback`: row-by-row transformers forward for other architectures;
- `models`: model files, device/dtype choice, the GGUF → safetensors cache;
- `embedder`: sentence embeddings (`bert`: its encoder, no transformers import);
  `chat_tokenizer`: the generator's tokenizer without transformers; `sampling`: token choice,
  stop strings, deltas;
- `remote` + `worker` + `wire`: Redis Streams backend and `shopkeep lm-worker`;
- `openai_backend`: any OpenAI-compatible server (vLLM, TGI, llama.cpp).
"""
