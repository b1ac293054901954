"""The language-model service: engine, scheduler, embedder and the client the bot talks to.

Only this package imports torch and transformers, and only lazily (`lm_service.engine`,
`lm_service.embedder`), so importing `lm_service.api` or `lm_service.client` stays cheap.
"""
