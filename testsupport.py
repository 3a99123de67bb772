"""Constants the tests share (importable: the pytest config puts the repo root on sys.path)."""

KEY = "0123456789abcdef0123456789abcdef"
AD_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.static-test-token"


def batch_jsonl(n: int, model: str = "gpt-4o-mini", *, url: str = "/chat/completions") -> bytes:
    """A valid batch input file of ``n`` chat requests ``task-0`` ... naming ``model``."""
    import json

    return "".join(
        json.dumps({"custom_id": f"task-{i}", "method": "POST", "url": url,
                    "body": {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]}}) + "\n"
        for i in range(n)
    ).encode()  # fmt: skip
