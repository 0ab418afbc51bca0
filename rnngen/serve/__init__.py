"""`rnngen serve`: the OpenAI HTTP API over the library, with continuous batching.

protocol.py  the wire format: request checks and OpenAI's error objects
scheduler.py one worker thread per model: every stream in one batched step
app.py       the routes (completions with SSE, models, health, score, the playground)
server.py    uvicorn, logging, the drain on SIGTERM
"""
