import sys

print("about to fail")
print("the input was not what this script expected", file=sys.stderr)
sys.exit(4)
