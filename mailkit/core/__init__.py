"""The engine's layers, bottom up: values, facts, resources, transaction, engine, over one SSH connection."""
