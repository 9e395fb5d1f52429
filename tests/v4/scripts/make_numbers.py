# Makes a list of numbers from the context it is given.
count = context.get("count", 3)  # noqa: F821 - python/execute provides context
numbers = [n * n for n in range(1, count + 1)]
print("made", len(numbers), "numbers")
result = {"numbers": numbers, "count": len(numbers)}
