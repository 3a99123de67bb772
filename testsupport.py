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


def add_family_deployments(emulator):  # type: ignore[no-untyped-def]
    """Deployments of every model family (issue 3), added to the session emulator.

    Names follow the Azure page's snippets; each ``model`` decides what the emulator accepts.
    """
    from modelyard.testing import Deployment

    for name, model in (
        ("my-o3-deployment", "o3-mini"),
        ("my-random-deployment-name", "o3"),
        ("prod-reasoner", "o3-mini"),
        ("my-o1-mini", "o1-mini"),
        ("o1-preview", "o1-preview"),
        ("my-gpt-5-deployment", "gpt-5"),
        ("gpt-5-mini", "gpt-5-mini"),
        ("gpt-5.1", "gpt-5.1"),
        ("my-gpt-5-chat", "gpt-5-chat"),
        ("azure-openai-4o-audio", "gpt-4o-audio-preview"),
        ("my-instruct-deployment", "gpt-35-turbo-instruct"),
    ):
        emulator.add_deployment(Deployment(name, model=model))
    return emulator


class ManualClock:
    """A clock for the emulator's batches that only the test moves (``emulator.batches.clock``).

    A batch then stays in its phase until the test calls ``advance``: a cancel right after a
    create always finds it running, however slow the machine (no race with the batch's progress).
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds
