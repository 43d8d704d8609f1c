"""A hello-world FastAPI upstream: the baseline for the gateway hop."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/api/v1/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
