"""Guard latency: what the default input policy adds to a request with a 1 KB prompt.

Issue 5 asks for an added p50 of at most 0.5 ms with the default input policy
(``guard/defaults.py``: PII and secrets redacted, injection refused). Three
measurements, in one run, on the same prompts (English and Spanish, ~1 KB,
support-ticket text; a third of them carry personal data or a key):

1. each detector of the policy alone (``detect`` on the prompt);
2. the whole input stage (``CompiledPolicy.check``);
3. the gateway end to end, in process: ``Gateway.generate`` on a mock backend
   for a deployment without a policy, one with the default policy's input rules
   alone (what the goal is about) and one with the whole default policy,
   interleaved request by request so drift on a shared machine favours none.

The detectors come from the plugin hook, as ``build_services`` builds them.

    .venv/bin/python benchmarks/guard_latency.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import GuardBlocked
from modelcycle.gateway import ChatCompletionRequest
from modelcycle.gateway.service import Gateway
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.defaults import DEFAULT_POLICY_NAME, default_policy
from modelcycle.guard.engine import CompiledPolicy, DetectorRegistry
from modelcycle.guard.service import detector_registry
from modelcycle.plugins import build_plugin_manager
from modelcycle.testing import admin_of, make_services, make_settings, register

GOAL_MS = 0.5
PROMPT_CHARS = 1024

EN = [
    "Hi team, I ordered a replacement charger last Tuesday and it still has not shipped.",
    "The tracking page says the parcel is waiting at the depot, but nobody answers there.",
    "Could you tell me whether I can change the delivery address to my office instead?",
    "I also noticed that the invoice lists two units although I paid for a single one.",
    "Our finance department needs a corrected invoice before the end of the quarter.",
    "Please summarise the return policy in three short bullet points for my manager.",
    "The device restarts whenever the battery drops below twenty percent, is that normal?",
    "We run the app on about forty laptops and the update failed on six of them.",
    "Attached is the error log from this morning; the crash happens right after login.",
    "Thanks for the quick reply yesterday, the workaround you suggested did help.",
]
ES = [
    "Hola, hice un pedido de un cargador de repuesto el martes pasado y aún no ha salido.",
    "La página de seguimiento dice que el paquete está en el almacén, pero nadie contesta.",
    "¿Podría cambiar la dirección de entrega a la de mi oficina en el centro de Madrid?",
    "También veo que la factura incluye dos unidades aunque solo pagué una.",
    "Nuestro departamento de contabilidad necesita la factura corregida antes del cierre.",
    "Resuma la política de devoluciones en tres puntos breves para mi responsable.",
    "El equipo se reinicia cuando la batería baja del veinte por ciento, ¿es normal?",
    "Usamos la aplicación en unos cuarenta portátiles y la actualización falló en seis.",
    "Adjunto el registro de errores de esta mañana; el fallo ocurre justo al iniciar sesión.",
    "Gracias por la respuesta rápida de ayer, la solución que propusieron funcionó.",
]
PII_EN = [
    "You can reach me at jordan.miller@example.com or on +44 20 7946 0958 after 5 pm.",
    "My card ending 4111 1111 1111 1111 was charged twice, please refund one payment.",
    "The staging key is sk_live_51HxQzR2eZvKYlo2C8Tq9pWmB3nVx0aLd7Fg, rotate it if needed.",
]
PII_ES = [
    "Mi DNI es 12345678Z y mi correo es lucia.fernandez@ejemplo.es, llámeme al 612 345 678.",
    "Pueden cobrar en la cuenta ES91 2100 0418 4502 0005 1332 a nombre de la empresa.",
    "La clave de acceso es AKIAIOSFODNN7EXAMPLE con el secreto que les envié ayer.",
]


def prompts(count: int, seed: int = 5) -> list[tuple[str, str]]:
    """(language, ~1 KB prompt) pairs; every third one carries personal data or a key."""
    rng = random.Random(seed)
    found = []
    for index in range(count):
        language = "en" if index % 2 == 0 else "es"
        plain, sensitive = (EN, PII_EN) if language == "en" else (ES, PII_ES)
        sentences: list[str] = []
        if index % 3 == 0:
            sentences.append(rng.choice(sensitive))
        while sum(len(s) + 1 for s in sentences) < PROMPT_CHARS:
            sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(plain))
        found.append((language, " ".join(sentences)[:PROMPT_CHARS]))
    return found


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds per call, ``repeat`` times."""
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def registry() -> DetectorRegistry:
    """The detectors every installed plugin offers, the built-in ones first."""
    return detector_registry(build_plugin_manager([BuiltinDetectors()]))


def per_detector(detectors: DetectorRegistry, texts: list[str], rounds: int) -> None:
    print(f"{'detector':<12} {'p50 ms':>8} {'p95 ms':>8}  (one 1 KB prompt, input rules)")
    for index, rule in enumerate(default_policy().input):
        detect = detectors.build(rule, f"input[{index}]").detect
        samples = [ms for text in texts for ms in timed(lambda t=text, d=detect: d(t), rounds)]
        p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
        print(f"{rule.detector:<12} {p50:>8.3f} {p95:>8.3f}")


def whole_policy(policy: CompiledPolicy, corpus: list[tuple[str, str]], rounds: int) -> float:
    for language in ("en", "es"):
        texts = [text for lang, text in corpus if lang == language]
        samples = [
            ms
            for text in texts
            for ms in timed(lambda t=text: policy.check(t, "input", role="user"), rounds)
        ]
        p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
        print(f"{'total ' + language:<12} {p50:>8.3f} {p95:>8.3f}")
    every = [
        ms
        for _, text in corpus
        for ms in timed(lambda t=text: policy.check(t, "input", role="user"), rounds)
    ]
    return percentile(every, 0.5)


DEPLOYMENTS = ("plain", "input-only", "guarded")
"""No policy; the default policy's input rules alone (what the goal is about); all of it."""


async def end_to_end(corpus: list[tuple[str, str]], rounds: int) -> dict[str, list[float]]:
    """Per-request ms of ``Gateway.generate`` for each of ``DEPLOYMENTS``."""
    home = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    services = make_services(make_settings(home, tracing=False))
    try:
        admin = admin_of(services).principal
        services.guard.ensure(admin, DEFAULT_POLICY_NAME, default_policy())
        input_only = default_policy().model_copy(update={"output": []})
        services.guard.ensure(admin, "input-only", input_only)
        target = register(
            services, admin, "bench-model", source="mock://script?reply=Sure", backend="mock"
        )
        route = Route(target=f"bench-model@{target.version}", weight=100)
        guards = {"plain": None, "input-only": "input-only", "guarded": DEFAULT_POLICY_NAME}
        for name, guard in guards.items():
            spec = DeploymentSpec(name=name, routes=[route], guard=guard)
            services.deployments.create(admin, spec)
        gateway: Gateway = services.gateway
        requests = {
            name: [
                ChatCompletionRequest.model_validate(
                    {"model": name, "messages": [{"role": "user", "content": text}]}
                ).to_inference()
                for _, text in corpus
            ]
            for name in DEPLOYMENTS
        }
        times: dict[str, list[float]] = {name: [] for name in DEPLOYMENTS}
        for round_ in range(rounds + 1):  # the first round warms caches up, not counted
            for index in range(len(corpus)):
                shift = index % len(DEPLOYMENTS)  # rotate the order: drift favours none
                for name in DEPLOYMENTS[shift:] + DEPLOYMENTS[:shift]:
                    started = time.perf_counter()
                    with contextlib.suppress(GuardBlocked):  # a refusal is a guarded answer
                        await gateway.generate(admin, requests[name][index])
                    if round_:
                        times[name].append((time.perf_counter() - started) * 1000)
        await gateway.aclose()
        return times
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="prompts (half EN, half ES)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the prompts")
    args = parser.parse_args()

    corpus = prompts(args.requests)
    detectors = registry()
    policy = detectors.compile(default_policy(), DEFAULT_POLICY_NAME)
    texts = [text for _, text in corpus]
    for text in texts[:20]:  # warm-up: lazily built patterns, caches
        policy.check(text, "input", role="user")
    print(f"{len(corpus)} prompts of {PROMPT_CHARS} characters, {args.rounds} rounds")
    per_detector(detectors, texts, args.rounds)
    check_p50 = whole_policy(policy, corpus, args.rounds)

    times = asyncio.run(end_to_end(corpus, args.rounds))
    p50 = {name: percentile(samples, 0.5) for name, samples in times.items()}
    p95 = {name: percentile(samples, 0.95) for name, samples in times.items()}
    print(f"{'gateway':<12} {'p50 ms':>8} {'p95 ms':>8}  (Gateway.generate, mock backend)")
    for name in DEPLOYMENTS:
        print(f"{name:<12} {p50[name]:>8.3f} {p95[name]:>8.3f}")
    added = p50["input-only"] - p50["plain"]
    print(f"input stage p50 (policy.check): {check_p50:.3f} ms  (goal <= {GOAL_MS:.3f} ms)")
    print(
        f"added p50 by the default input policy, end to end: {added:+.3f} ms "
        f"(p95 {p95['input-only'] - p95['plain']:+.3f} ms); "
        f"ratio {p50['input-only'] / p50['plain']:.2f}"
    )
    print(
        f"added p50 by the whole default policy (input and output): "
        f"{p50['guarded'] - p50['plain']:+.3f} ms"
    )
    print("PASS" if added <= GOAL_MS else "FAIL", f"(input policy, end to end, <= {GOAL_MS} ms)")


if __name__ == "__main__":
    main()
