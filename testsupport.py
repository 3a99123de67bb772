"""Constants the tests share (importable: the pytest config puts the repo root on sys.path)."""

KEY = "0123456789abcdef0123456789abcdef"
AD_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.static-test-token"
