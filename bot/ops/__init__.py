"""Operations: health and metrics endpoints, instrumentation and graceful shutdown."""
