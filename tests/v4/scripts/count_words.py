# Counts the words of the file the batch hands over in context["file_path"].
with open(context["file_path"], encoding="utf-8") as f:  # noqa: F821 - python/execute provides context
    result = len(f.read().split())
