"""IR utilities every layer shares: the Context, tool paths, walking and function lookup, element
types and signatures, pass pipelines, bufferization steps and linalg builders. Imports nothing else
from lean_mlir."""
