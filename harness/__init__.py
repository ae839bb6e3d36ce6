"""Reproduce 'Distributing binaries in images' stage by stage, and explain every size."""
