"""What a call cost: model prices, which price applies, and the arithmetic per unit.

Prices are LiteLLM's published price data (``model_prices_and_context_window.json``, MIT), of
which modelyard ships the Azure and OpenAI entries in ``data/model_prices.json``; the keys are
LiteLLM's (``input_cost_per_token``, ``cache_read_input_token_cost``, ``input_cost_per_pixel``
...), so a price written for LiteLLM works here unchanged. Nothing is read before the first cost
is computed: ``import modelyard`` stays fast.

The table is built once, at the first cost computation, in this order (later wins per model):

1. the shipped file;
2. prices the plugins contribute (``register_prices`` hook, HOOK_API 1.6);
3. the file or URL in ``MODELYARD_PRICES`` (a refresh without a release; unset: offline);
4. :func:`register_model` calls (LiteLLM's name), at any time.

Which price applies to one call (:func:`resolve`): the deployment's own prices
(``model_info`` / ``litellm_params`` keys such as ``input_cost_per_token``) over the table's
entry for ``base_model``, else the model the upstream reported, else the deployment name. No
price: the cost is None and one warning per model is logged, never a guess. See docs/spend.md.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PRICE_KEYS",
    "PriceNames",
    "Units",
    "completion_cost",
    "cost",
    "get_model_prices",
    "load_prices",
    "price_overrides",
    "register_model",
    "reset_prices",
    "resolve",
    "units_of",
    "usage_dict",
]

log = logging.getLogger("modelyard.pricing")

_DATA = Path(__file__).parent / "data" / "model_prices.json"
_PRICE_KEY = re.compile(r"(cost_per_|_cost$|_cost_)")

PRICE_KEYS = frozenset(
    {"input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
     "cache_creation_input_token_cost", "input_cost_per_audio_token", "output_cost_per_audio_token",
     "output_cost_per_reasoning_token", "input_cost_per_image", "output_cost_per_image", "input_cost_per_pixel",
     "input_cost_per_image_token", "output_cost_per_image_token", "input_cost_per_character",
     "input_cost_per_second", "output_cost_per_second", "input_cost_per_token_batches",
     "output_cost_per_token_batches"}
)  # fmt: skip
"""The per-deployment price keys read from ``model_info`` and ``litellm_params`` (LiteLLM's names)."""

BATCH_DISCOUNT = 0.5
"""Azure's Global Batch price as a share of the standard one, for models without ``*_batches`` prices."""



@dataclass(frozen=True)
class PriceNames:
    """How one provider's models are named in the price table (``register_price_names``).

    Attributes:
        provider: the provider (``route.provider``) whose entries are ``<provider>/<model>``.
        prefixes: the table's key prefixes that name this provider (its own name and the
            spellings LiteLLM's table uses for it); a lookup strips them to find the bare name.
        fallback: try this provider's entries for a model of any provider (after that
            provider's own) and for a name priced with no provider (``completion_cost``):
            the provider whose prices the table is mostly about.
        aliases: ``{"spelling": "table's spelling"}`` rewrites of the bare name, tried last
            (a provider whose model names differ from the table's by a character).
    """

    provider: str
    prefixes: tuple[str, ...] = ()
    fallback: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Names:
    """The merged :class:`PriceNames` of the loaded plugins."""

    prefixes: frozenset[str] = frozenset()
    fallbacks: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()


_lock = threading.Lock()
_names = _Names()
_table: dict[str, dict[str, Any]] | None = None
_registered: dict[str, dict[str, Any]] = {}
_warned: set[str] = set()
_configured_source: str | None = None


# --------------------------------------------------------------------------- the table


def _load_source(source: str) -> dict[str, Any]:
    """A price file (LiteLLM's format) from a path, a ``file://`` URL, or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(source, timeout=10.0, follow_redirects=True)
        response.raise_for_status()
        data = response.json()
    else:
        path = source.removeprefix("file://")
        data = json.loads(Path(path).expanduser().read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object of model name -> prices")
    return data


def _shown(source: str) -> str:
    """``source`` fit for a log line: a URL without its query, fragment or user info (tokens)."""
    if "://" not in source or source.startswith("file://"):
        return source
    from urllib.parse import urlsplit

    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _merge(table: dict[str, dict[str, Any]], entries: Mapping[str, Any], where: str) -> None:
    for name, prices in entries.items():
        if name == "sample_spec":
            continue
        if not isinstance(prices, Mapping):
            log.warning("prices from %s: %r is not an object; skipped", where, name)
            continue
        table.setdefault(name, {}).update(prices)


def _plugin_prices() -> dict[str, dict[str, Any]]:
    from .plugins import get_plugins

    found: dict[str, dict[str, Any]] = {}

    def register(model: str, prices: Mapping[str, Any], /) -> None:
        found.setdefault(model, {}).update(prices)

    try:
        get_plugins().hook.register_prices(register=register)
    except Exception:  # a plugin's bug must not break cost tracking for every model
        log.exception("a register_prices hook raised; its prices are left out")
    return found


def _plugin_names() -> _Names:
    from .plugins import get_plugins

    found: list[PriceNames] = []
    for impl in get_plugins().pm.hook.register_price_names.get_hookimpls():
        declared: list[PriceNames] = []

        def register(names: PriceNames, /, _declared: list[PriceNames] = declared, _name: str = impl.plugin_name) -> None:
            if not isinstance(names, PriceNames):
                raise TypeError(f"plugin {_name!r} registered {type(names).__name__}, not a modelyard.pricing.PriceNames")
            _declared.append(names)

        try:
            impl.function(register=register)
        except Exception:  # a plugin's bug must not break cost tracking for every model
            log.exception("register_price_names of %s raised; its price names are left out", impl.plugin_name)
            continue
        found += declared
    found.sort(key=lambda n: n.provider)
    return _Names(
        prefixes=frozenset(p for n in found for p in (n.provider, *n.prefixes)),
        fallbacks=tuple(dict.fromkeys(n.provider for n in found if n.fallback)),
        aliases=tuple(dict.fromkeys(a for n in found for a in n.aliases.items())),
    )


def _build() -> dict[str, dict[str, Any]]:
    global _names
    _names = _plugin_names()
    table: dict[str, dict[str, Any]] = {}
    _merge(table, json.loads(_DATA.read_text()), str(_DATA))
    _merge(table, _plugin_prices(), "plugins")
    source = _configured_source or os.environ.get("MODELYARD_PRICES", "").strip()
    if source:
        try:
            _merge(table, _load_source(source), "MODELYARD_PRICES")
        except Exception as exc:  # keep the shipped prices rather than none
            where = "the configured prices" if _configured_source else "MODELYARD_PRICES"
            log.warning(
                "%s %s could not be loaded (%s); using the shipped prices", where, _shown(source), type(exc).__name__
            )
    _merge(table, _registered, "register_model")
    return table


def _prices() -> dict[str, dict[str, Any]]:
    global _table
    table = _table
    if table is None:
        with _lock:
            if _table is None:
                _table = _build()
            table = _table
    return table


def load_prices(source: str | None = None) -> int:
    """Build the price table now instead of at the first call (the proxy does, at start-up).

    Args:
        source: a price file or URL (LiteLLM's format) to lay over the shipped prices, in place
            of ``MODELYARD_PRICES``; None keeps ``MODELYARD_PRICES``.

    Returns:
        How many models have a price.

    Raises:
        ConfigError: ``source`` cannot be read or is not a JSON object of model prices.
    """
    global _configured_source, _table
    if source:
        try:
            _load_source(source)
        except Exception as exc:
            from .errors import ConfigError

            detail = f"{type(exc).__name__}: {exc}" if "://" not in source or source.startswith("file://") else type(exc).__name__
            raise ConfigError(f"The price file {_shown(source)!r} cannot be loaded ({detail}).", key="prices") from None
    with _lock:
        _configured_source = source or None
        _table = None
        _resolved.clear()
        _text_rates.clear()
    return len(_prices())


def register_model(model_cost: Mapping[str, Mapping[str, Any]] | str) -> None:
    """Add or change model prices, as LiteLLM's ``litellm.register_model``.

    Args:
        model_cost: ``{"azure/my-model": {"input_cost_per_token": 1e-06, ...}}`` (keys of an
            existing model are updated, the others kept), or a path or URL of such a file.
    """
    entries = _load_source(model_cost) if isinstance(model_cost, str) else model_cost
    with _lock:
        _merge(_registered, entries, "register_model")
        if _table is not None:
            _merge(_table, entries, "register_model")
        _resolved.clear()
        _text_rates.clear()
        _warned.clear()


def reset_prices() -> None:
    """Forget the loaded table, :func:`register_model` entries and warnings (tests; a new ``MODELYARD_PRICES``)."""
    global _table, _configured_source
    with _lock:
        _table = None
        _configured_source = None
        _registered.clear()
        _resolved.clear()
        _text_rates.clear()
        _warned.clear()


def get_model_prices(model: str, provider: str | None = None) -> dict[str, Any] | None:
    """The table's prices for ``model``, or None.

    Tried in order: the name as given when its prefix names a provider, ``<provider>/<bare
    name>`` (``provider`` None: the fallback provider's, see :class:`PriceNames`), the fallback
    providers' entries, the bare name, then its declared alias spellings.
    """
    table = _prices()
    for key in _candidates(model, provider):
        entry = table.get(key)
        if entry is not None:
            return entry
    return None


def _candidates(model: str, provider: str | None) -> list[str]:
    names = _names
    prefixed = "/" in model and model.split("/", 1)[0] in names.prefixes
    bare = model.split("/", 1)[1] if prefixed else model
    # The name as given when it names its provider, then the call's provider's own entry (its
    # price for a bare name it reported), then the fallback providers' and the bare entry.
    found = [model] if prefixed else []
    for owner in ((provider,) if provider else names.fallbacks[:1]) + names.fallbacks:
        found.append(f"{owner}/{bare}")
    found.append(bare)
    for spelling, table_spelling in names.aliases:
        if spelling in bare:
            found.append(bare.replace(spelling, table_spelling))
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- which price


def price_overrides(*sources: Mapping[str, Any] | None) -> dict[str, Any]:
    """The price keys found in ``model_info`` / ``litellm_params`` (the first source wins per key)."""
    out: dict[str, Any] = {}
    for source in sources:
        if not source:
            continue
        for key, value in source.items():
            if value is None or key in out:
                continue
            priced = _price_key.get(key)
            if priced is None:  # the regex once per name (a few per deployment), not per call
                if len(_price_key) > 4096:
                    _price_key.clear()
                priced = _price_key[key] = isinstance(key, str) and _PRICE_KEY.search(key) is not None
            if priced:
                out[key] = value
    return out


_price_key: dict[Any, bool] = {}


_resolved: dict[tuple[Any, ...], tuple[str | None, dict[str, Any] | None, bool]] = {}
_text_rates: dict[tuple[Any, ...], tuple[float | None, float | None] | None] = {}
"""Per :func:`_lookup` key: the input and output price per text token (no tiers, no batch),
(None where the prices have none), or None when :func:`token_cost` must take the general way
(no price, tiered prices)."""


def _cache_key(*parts: Any, overrides: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if not overrides:
        return parts
    try:
        items = tuple(sorted(overrides.items()))
        hash(items)
    except TypeError:  # a per-size price mapping: not cached
        return None
    return (*parts, items)


def resolve(
    *,
    overrides: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    reported_model: str | None = None,
    deployment: str | None = None,
    provider: str | None = None,
    size: str | None = None,
    quality: str | None = None,
) -> tuple[str | None, dict[str, Any] | None]:
    """The name and prices that apply to one call, in order: overrides > base_model > reported > deployment.

    Overrides are laid over the table's entry of the first name found (so a deployment that
    overrides only ``input_cost_per_token`` keeps the table's cached-token price), or stand alone.
    For images, ``size`` and ``quality`` pick the table's per-size entry
    (``azure/hd/1024-x-1792/dall-e-3``) before the model's own.

    Returns:
        ``(name, prices)``; ``(name_tried_first, None)`` when no price is known.
    """
    name, prices, _ = _lookup(overrides, base_model, reported_model, deployment, provider, size, quality)
    return name, prices


def _lookup(
    overrides: Mapping[str, Any] | None,
    base_model: str | None,
    reported_model: str | None,
    deployment: str | None,
    provider: str | None,
    size: str | None,
    quality: str | None,
) -> tuple[str | None, dict[str, Any] | None, bool]:
    """:func:`resolve`, cached per argument set, with whether the prices have tiers (``*_above_*``)."""
    key = _cache_key(base_model, reported_model, deployment, provider, size, quality, overrides=overrides)
    if key is not None:
        found = _resolved.get(key)
        if found is not None:
            return found
    name, prices = _resolve(overrides, base_model, reported_model, deployment, provider, size, quality)
    result = (name, prices, prices is not None and any("_above_" in k for k in prices))
    if key is not None:
        if len(_resolved) > 4096:  # bounded: model names come from config and upstream answers
            _resolved.clear()
        _resolved[key] = result
    return result


def _resolve(
    overrides: Mapping[str, Any] | None,
    base_model: str | None,
    reported_model: str | None,
    deployment: str | None,
    provider: str | None,
    size: str | None,
    quality: str | None,
) -> tuple[str | None, dict[str, Any] | None]:
    _prices()  # the plugins' price names come with the table
    names = [n for n in (base_model, reported_model, deployment) if n]
    for name in names:
        entry = None
        if size is not None or quality is not None:
            width, height = _size(size)
            bare = name.split("/", 1)[1] if name.split("/", 1)[0] in _names.prefixes and "/" in name else name
            for variant in (f"{quality or 'standard'}/{width}-x-{height}/{bare}", f"{width}-x-{height}/{bare}"):
                entry = get_model_prices(variant, provider)
                if entry is not None:
                    break
        entry = entry or get_model_prices(name, provider)
        if entry is not None:
            return name, ({**entry, **overrides} if overrides else entry)
    if overrides:
        return (names[0] if names else "custom"), dict(overrides)
    return (names[0] if names else None), None


# --------------------------------------------------------------------------- the arithmetic


@dataclass(frozen=True)
class Units:
    """What one call used, in the units prices are quoted in.

    Attributes:
        usage: the response's ``usage`` (chat/completions/embeddings ``prompt_tokens`` ...,
            or responses/images ``input_tokens`` ...), as a dict.
        images: images generated; ``size`` (``1024x1024``) and ``quality`` (``standard``, ``hd``)
            pick the price.
        characters: characters of text turned into speech.
        seconds: seconds of audio transcribed or translated.
        batch: priced at the Batch API's rates.
    """

    usage: Mapping[str, Any] | None = None
    images: int | None = None
    size: str | None = None
    quality: str | None = None
    characters: int | None = None
    seconds: float | None = None
    batch: bool = False


class _Unpriced(Exception):
    """A unit the call used has no price: the cost is unknown, not zero."""


def _rate(prices: Mapping[str, Any], key: str, *, batch: bool, tokens: int = 0, fallback: str | None = None) -> float:
    """One rate: the tier for ``tokens`` (``*_above_128k_tokens``), the batch rate, else ``fallback``'s."""
    base = key
    if tokens:
        tiers = []
        for k in prices:
            m = re.fullmatch(re.escape(key) + r"_above_(\d+)k_tokens", k)
            if m and tokens > int(m.group(1)) * 1000:
                tiers.append((int(m.group(1)), k))
        if tiers:
            base = max(tiers)[1]
    if batch:
        batch_rate = prices.get(f"{base}_batches")
        if isinstance(batch_rate, int | float):
            return float(batch_rate)
    rate = prices.get(base)
    if not isinstance(rate, int | float):
        if fallback is not None:
            return _rate(prices, fallback, batch=batch, tokens=tokens)
        raise _Unpriced(key)
    return float(rate) * (BATCH_DISCOUNT if batch else 1.0)


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def usage_dict(usage: Any) -> dict[str, Any] | None:
    """A usage object (a pydantic ``Usage``, a dict) as the plain dict pricing reads.

    A pydantic model's fields are read from its ``__dict__`` (one level of nesting is all usage
    has): a tenth of ``model_dump``'s cost, on every call.
    """
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        return dict(usage)
    fields = getattr(usage, "__dict__", None)
    if not isinstance(fields, dict):
        return None
    return {k: (v.__dict__ if hasattr(v, "__pydantic_fields__") else v) for k, v in fields.items()}


_IMAGE_OPERATIONS = frozenset({"image_generation", "image_edit"})
_AUDIO_IN_OPERATIONS = frozenset({"transcriptions", "translations"})


def units_of(operation: str, usage: Any, params: Mapping[str, Any] | None = None, result: Any = None) -> Units:
    """What one call of ``operation`` used, from its usage, request parameters and result.

    Chat, completions, embeddings: the usage's tokens. Images: tokens when reported (gpt-image-1),
    else one per image returned (``n`` when the result has none) at the request's ``size`` and
    ``quality``. Speech: the characters of ``input``. Transcriptions and translations: seconds,
    from the result's ``duration`` (``verbose_json``) or a ``{"type": "duration", "seconds": ...}``
    usage; tokens when the usage counts them (gpt-4o-transcribe).
    """
    used = usage_dict(usage)
    params = params or {}
    if operation in _IMAGE_OPERATIONS:
        data = getattr(result, "data", None)
        n = len(data) if isinstance(data, list) and data else params.get("n") or 1
        return Units(usage=used, images=int(n), size=params.get("size"), quality=params.get("quality"))
    if operation == "speech":
        text = params.get("input")
        return Units(characters=len(text) if isinstance(text, str) else None)
    if operation in _AUDIO_IN_OPERATIONS:
        seconds = _seconds(getattr(result, "duration", None))
        if used is not None and used.get("type") == "duration":
            seconds = _seconds(used.get("seconds")) if seconds is None else seconds
            used = None
        return Units(usage=used if _has_tokens(used) else None, seconds=seconds)
    return Units(usage=used)


TOKEN_OPERATIONS = frozenset({"chat", "completions", "embeddings"})
"""The operations priced by the usage's tokens alone (:func:`units_of` gives ``Units(usage=...)``)."""


def token_cost(
    usage: Any,
    *,
    overrides: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    reported_model: str | None = None,
    deployment: str | None = None,
    provider: str | None = None,
) -> float | None:
    """``cost(units_of(op, usage), ...)`` of a :data:`TOKEN_OPERATIONS` call whose usage (a
    pydantic ``Usage``) counts text tokens only, from the two rates cached per price lookup:
    no ``Units``, no usage dict, no price key looked up per call. None when the call takes
    :func:`cost` (which gives None itself when no price applies): another usage, tokens of other
    kinds, tiered prices, no price.
    """
    fields = getattr(usage, "__dict__", None)
    if type(fields) is not dict or not hasattr(usage, "__pydantic_fields__"):
        return None
    get = fields.get
    # As _token_cost reads the dict usage_dict() gives (declared fields, details as dicts).
    prompt = _int(get("prompt_tokens")) or _int(get("input_tokens"))
    output = _int(get("completion_tokens")) or _int(get("output_tokens"))
    for name in ("prompt_tokens_details", "input_tokens_details", "completion_tokens_details", "output_tokens_details"):
        details = get(name)
        if details is not None and not _no_other_tokens(details):
            return None
    key = _cache_key(base_model, reported_model, deployment, provider, None, None, overrides=overrides)
    if key is None:
        return None
    try:
        rates = _text_rates[key]
    except KeyError:
        rates = _text_rates_of(overrides, base_model, reported_model, deployment, provider)
        if len(_text_rates) > 4096:
            _text_rates.clear()
        _text_rates[key] = rates
    if rates is None:
        return None
    rate_in, rate_out = rates
    if (prompt > 0 and rate_in is None) or (output > 0 and rate_out is None):
        return None  # cost() warns once and gives None
    total = prompt * rate_in if prompt > 0 and rate_in is not None else 0.0
    return total + (output * rate_out if output > 0 and rate_out is not None else 0.0)


def warned_unpriced(
    *,
    overrides: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    reported_model: str | None = None,
    deployment: str | None = None,
    provider: str | None = None,
) -> bool:
    """Whether :func:`cost` of a call that reported no usage (a stream on an api-version that
    does not send it) is None without a word: it always is None, and its one warning for the
    name it would be priced as has been given. Spares the raised and caught ``_Unpriced`` of
    every such call."""
    try:
        name, _, _ = _lookup(overrides, base_model, reported_model, deployment, provider, None, None)
    except Exception:  # cost() logs it
        return False
    return (name or "?") in _warned


def call_cost(
    operation: str,
    usage: Any,
    priced: Mapping[str, Any] | None = None,
    result: Any = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    reported_model: str | None = None,
    deployment: str | None = None,
    provider: str | None = None,
) -> float | None:
    """``cost(units_of(operation, usage, priced, result), ...)``: what one call cost, or None.

    A :data:`TOKEN_OPERATIONS` call (most calls) takes the short ways first: text tokens at the
    two rates cached per price lookup (:func:`token_cost`), and a call without usage whose one
    warning was given is None at once (:func:`warned_unpriced`); anything else goes the general
    way, with the same result.
    """
    if operation in TOKEN_OPERATIONS:
        if usage is None:
            if warned_unpriced(overrides=overrides, base_model=base_model, reported_model=reported_model,
                               deployment=deployment, provider=provider):  # fmt: skip
                return None
        else:
            found = token_cost(usage, overrides=overrides, base_model=base_model, reported_model=reported_model,
                               deployment=deployment, provider=provider)  # fmt: skip
            if found is not None:
                return found
    return cost(units_of(operation, usage, priced, result), overrides=overrides, base_model=base_model,
                reported_model=reported_model, deployment=deployment, provider=provider)  # fmt: skip


_OTHER_TOKENS = ("cached_tokens", "cache_write_tokens", "audio_tokens", "image_tokens", "reasoning_tokens")


def _no_other_tokens(details: Any) -> bool:
    """Whether a usage's details object counts no tokens priced apart from text (cached, audio ...)."""
    fields = getattr(details, "__dict__", None)
    if type(fields) is not dict or not hasattr(details, "__pydantic_fields__"):
        return False
    return not any(_int(fields.get(name)) for name in _OTHER_TOKENS)


def _text_rates_of(
    overrides: Mapping[str, Any] | None, base_model: str | None, reported_model: str | None,
    deployment: str | None, provider: str | None,
) -> tuple[float | None, float | None] | None:  # fmt: skip
    _, prices, tiered = _lookup(overrides, base_model, reported_model, deployment, provider, None, None)
    if prices is None or tiered:
        return None

    def rate(key: str) -> float | None:
        try:
            return _rate(prices, key, batch=False)
        except _Unpriced:
            return None

    try:
        return rate("input_cost_per_token"), rate("output_cost_per_token")
    except Exception:  # a malformed price (a string where a number belongs): cost() logs it
        return None


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _details(usage: Mapping[str, Any], *names: str) -> Mapping[str, Any]:
    for name in names:
        value = usage.get(name)
        if isinstance(value, Mapping):
            return value
    return {}


def _token_cost(prices: Mapping[str, Any], usage: Mapping[str, Any], batch: bool, tiered: bool = True) -> float:
    prompt = _int(usage.get("prompt_tokens")) or _int(usage.get("input_tokens"))
    output = _int(usage.get("completion_tokens")) or _int(usage.get("output_tokens"))
    din = _details(usage, "prompt_tokens_details", "input_tokens_details")
    dout = _details(usage, "completion_tokens_details", "output_tokens_details")
    cached = _int(din.get("cached_tokens"))
    written = _int(din.get("cache_write_tokens"))  # prompt-cache writes (some providers bill them apart)
    audio_in = _int(din.get("audio_tokens"))
    image_in = _int(din.get("image_tokens"))
    reasoning = _int(dout.get("reasoning_tokens"))
    audio_out = _int(dout.get("audio_tokens"))
    image_out = _int(dout.get("image_tokens"))
    text_in = max(prompt - cached - written - audio_in - image_in, 0)
    text_out = max(output - reasoning - audio_out - image_out, 0)
    tier = prompt if tiered else 0  # tiered prices (``*_above_200k_tokens``) are rare: skip the search
    if not (cached or written or audio_in or image_in or reasoning or audio_out or image_out):
        # Text tokens only (most calls): the sum below is these two parts, the others adding 0.0.
        total = text_in * _rate(prices, "input_cost_per_token", batch=batch, tokens=tier) if text_in else 0.0
        return total + (text_out * _rate(prices, "output_cost_per_token", batch=batch, tokens=tier) if text_out else 0.0)

    def part(n: int, key: str, fallback: str | None = None) -> float:
        return n * _rate(prices, key, batch=batch, tokens=tier, fallback=fallback) if n else 0.0

    total = part(text_in, "input_cost_per_token")
    total += part(cached, "cache_read_input_token_cost", "input_cost_per_token")
    total += part(written, "cache_creation_input_token_cost", "input_cost_per_token")
    total += part(audio_in, "input_cost_per_audio_token")  # no fallback: audio is never billed as text
    total += part(image_in, "input_cost_per_image_token", "input_cost_per_token")
    total += part(text_out, "output_cost_per_token")
    total += part(reasoning, "output_cost_per_reasoning_token", "output_cost_per_token")
    total += part(audio_out, "output_cost_per_audio_token")
    total += part(image_out, "output_cost_per_image_token", "output_cost_per_token")
    return total


def _size(size: str | None) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[x*-]+\s*(\d+)\s*", size or "1024x1024")
    if not m:
        raise _Unpriced(f"size {size!r}")
    return int(m.group(1)), int(m.group(2))


def _image_cost(prices: Mapping[str, Any], units: Units) -> float:
    width, height = _size(units.size)
    quality = units.quality or "standard"
    per_image = prices.get("input_cost_per_image", prices.get("output_cost_per_image"))
    if isinstance(per_image, Mapping):  # a deployment's own per-size prices: {"hd/1024x1792": 0.12, ...}
        for key in (f"{quality}/{width}x{height}", f"{width}x{height}", quality):
            if isinstance(per_image.get(key), int | float):
                per_image = per_image[key]
                break
        else:
            raise _Unpriced(f"image {quality}/{width}x{height}")
    if isinstance(per_image, int | float):
        price = float(per_image)
    elif isinstance(prices.get("input_cost_per_pixel"), int | float):
        price = float(prices["input_cost_per_pixel"]) * width * height
    else:
        raise _Unpriced("image")
    return price * (units.images or 0) * (BATCH_DISCOUNT if units.batch else 1.0)


def _has_tokens(usage: Mapping[str, Any] | None) -> bool:
    if not usage:
        return False
    get = usage.get
    return bool(_int(get("prompt_tokens")) or _int(get("completion_tokens")) or _int(get("input_tokens"))
                or _int(get("output_tokens")))  # fmt: skip


def cost_of(prices: Mapping[str, Any], units: Units, *, tiered: bool = True) -> float:
    """The cost of ``units`` at ``prices`` (a LiteLLM-keyed price dict), in USD.

    One kind of unit prices a call: tokens when the usage counts any and the model has token
    prices (gpt-image-1 images, gpt-4o-transcribe), else images, characters or seconds.

    Raises:
        _Unpriced: a unit was used that ``prices`` has no price for.
    """
    token_priced = "input_cost_per_token" in prices or "output_cost_per_token" in prices or "input_cost_per_image_token" in prices
    if units.usage is not None and _has_tokens(units.usage) and (token_priced or units.images is None):
        return _token_cost(prices, units.usage, units.batch, tiered)
    if units.images is not None:
        return _image_cost(prices, units)
    if units.characters is not None:
        return units.characters * _rate(prices, "input_cost_per_character", batch=units.batch)
    if units.seconds is not None:
        return units.seconds * _rate(prices, "input_cost_per_second", batch=units.batch)
    if units.usage is not None:
        return 0.0  # a call that used nothing
    raise _Unpriced("this call: the response reported no usage")


def cost(
    units: Units,
    *,
    overrides: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    reported_model: str | None = None,
    deployment: str | None = None,
    provider: str | None = None,
) -> float | None:
    """What one call cost in USD, or None (with one warning per model) when no price applies.

    Never raises: a price that cannot be found or a unit without a price gives None.
    """
    name = base_model or reported_model or deployment
    try:
        size = (units.size or "1024x1024") if units.images is not None else None
        name, prices, tiered = _lookup(overrides, base_model, reported_model, deployment, provider, size, units.quality)
        if prices is None:
            raise _Unpriced("no price")
        return cost_of(prices, units, tiered=tiered)
    except _Unpriced as exc:
        tried = [n for n in dict.fromkeys((base_model, reported_model, deployment)) if n]
        _warn_once(name, str(exc), tried)
    except Exception:  # a malformed price (a string where a number belongs) must not fail the call
        log.exception("pricing %r failed", name)
    return None


def _warn_once(name: str | None, what: str, tried: list[str] | None = None) -> None:
    key = name or "?"
    if key in _warned:
        return
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    if what == "no price":
        log.warning(
            "no price for model %s: its cost is None. Set base_model, or input_cost_per_token / "
            "output_cost_per_token in model_info, or add it to MODELYARD_PRICES (docs/spend.md).",
            " or ".join(repr(n) for n in tried or [key]),
        )  # fmt: skip
    else:
        log.warning("model %r: no price for %s, so its cost is None (docs/spend.md).", key, what)


# --------------------------------------------------------------------------- SDK


def completion_cost(
    completion_response: Any = None,
    model: str | None = None,
    *,
    base_model: str | None = None,
    custom_cost_per_token: Mapping[str, float] | None = None,
    custom_cost_per_second: float | None = None,
    size: str | None = None,
    quality: str | None = None,
    n: int | None = None,
    prompt: str | None = None,
    duration: float | None = None,
    batch: bool = False,
    usage: Mapping[str, Any] | None = None,
) -> float | None:
    """The cost of a call in USD, as LiteLLM's ``completion_cost``; None when no price applies.

    A response from modelyard carries its cost already (``response.cost``): without other
    arguments that is returned. Otherwise the cost is computed from what the response used, at
    the price of ``base_model``, else ``model``, else the model the response reports.

    Args:
        completion_response: a result of any operation (chat, text completion, a finished
            stream, embeddings, images, a transcription ...) or its dict.
        model: the model to price it as (``azure/gpt-4o``) instead of the reported one.
        base_model: as a deployment's ``base_model``: wins over ``model``.
        custom_cost_per_token: ``{"input_cost_per_token": ..., "output_cost_per_token": ...}``.
        custom_cost_per_second: a price per second of audio.
        size, quality, n: for images when the response does not say (``1024x1024``, ``hd``, 1).
        prompt: the text of a speech call, priced per character.
        duration: seconds of audio of a transcription, when the response does not say.
        batch: price at the Batch API's rates.
        usage: the usage to price when there is no response.

    Returns:
        The cost in USD, or None (and one warning per model) when no price is known.
    """
    overrides = dict(custom_cost_per_token or {})
    if custom_cost_per_second is not None:
        overrides["input_cost_per_second"] = custom_cost_per_second
    hidden = getattr(completion_response, "_hidden_params", None)
    plain = not (model or base_model or overrides or size or quality or n or prompt or duration or batch or usage)
    if plain and isinstance(hidden, Mapping) and "response_cost" in hidden:
        return hidden["response_cost"]  # type: ignore[no-any-return]
    data = _as_dict(completion_response)
    units = Units(
        usage=usage if usage is not None else data.get("usage"),
        images=n if n is not None else (len(data["data"]) if _is_images(data) else None),
        size=size or data.get("size"),
        quality=quality or data.get("quality"),
        characters=len(prompt) if prompt is not None else None,
        seconds=duration if duration is not None else _float(data.get("duration")),
        batch=batch,
    )
    if isinstance(hidden, Mapping) and not (model or base_model):
        base_model = hidden.get("base_model")
        overrides = {**(hidden.get("price_overrides") or {}), **overrides}
    return cost(
        units, overrides=overrides or None, base_model=base_model, reported_model=model or data.get("model") or None,
    )  # fmt: skip


def _as_dict(response: Any) -> dict[str, Any]:
    if response is None:
        return {}
    if isinstance(response, Mapping):
        return dict(response)
    usage = getattr(response, "usage", None)
    if usage is not None or hasattr(response, "model"):  # a stream, or a pydantic response
        dump = getattr(response, "model_dump", None)
        if callable(dump):
            data: dict[str, Any] = dump(exclude_none=True)
            return data
        out: dict[str, Any] = {"model": getattr(response, "model", None)}
        if usage is not None:
            out["usage"] = usage.model_dump(exclude_none=True) if hasattr(usage, "model_dump") else usage
        return out
    return {}


def _is_images(data: Mapping[str, Any]) -> bool:
    items = data.get("data")
    return isinstance(items, list) and bool(items) and isinstance(items[0], Mapping) and (
        "b64_json" in items[0] or "url" in items[0]
    )


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
