"""Task plugins. Each module registers its tasks with @register_task and is listed as an entry point."""
