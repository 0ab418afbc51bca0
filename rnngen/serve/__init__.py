"""`rnngen serve`: the OpenAI HTTP API over the library, with continuous batching.

protocol.py  the wire format: request checks and OpenAI's error objects
scheduler.py one worker thread per model: every stream in one batched step
app.py       the routes (completions, models, health, score, the playground)
answers.py   a completion's answer: one JSON object, or server-sent events as text arrives
server.py    uvicorn, logging, the drain on SIGTERM
"""
