"""Answers to members: the reply pipeline, conversation memory, prompts and citations."""
