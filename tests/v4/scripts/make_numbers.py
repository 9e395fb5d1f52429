# Makes a list of numbers from the context it is given.
count = context.get("count", 3)
numbers = [n * n for n in range(1, count + 1)]
print("made", len(numbers), "numbers")
result = {"numbers": numbers, "count": len(numbers)}
