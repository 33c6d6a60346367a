"""The reference workload's 8 routes (refinery/routes/workload.yaml) route exactly as workload.md says."""

from __future__ import annotations

from pathlib import Path

import pytest

from refinery.routing.router import Router, compile_router
from refinery.routing.rules import load_route_file
from tests.refinery.routing.route_samples import record_headers

WORKLOAD_ROUTES = Path(__file__).resolve().parents[3] / "refinery" / "routes" / "workload.yaml"


@pytest.fixture(scope="module")
def router() -> Router:
    return compile_router(load_route_file(WORKLOAD_ROUTES))


def routed(router: Router, **fields: object) -> dict[str, str]:
    return {d.route: d.topic for d in router.route(record_headers(**fields))}  # type: ignore[arg-type]


def test_the_set_has_the_eight_routes_in_order(router: Router) -> None:
    assert router.route_set.route_names() == [
        "prod-1234-by-category",
        "prod-purchases",
        "dev-everything",
        "matches-2x",
        "crashes-outside-prod",
        "small-titles",
        "pc-kills",
        "kills-v2",
    ]
    assert router.route_set.catch_all is None


def test_route_1_prod_1234_by_category(router: Router) -> None:
    assert routed(router, title="1234", category="session_heartbeat", platform="ps") == {
        "prod-1234-by-category": "prod.telemetry.1234.session_heartbeat-v1"
    }
    assert "prod-1234-by-category" not in routed(router, env="dev", title="1234")


def test_route_2_prod_purchases(router: Router) -> None:
    assert routed(router, source="backend", title="2345", category="purchase", platform="xbox") == {
        "prod-purchases": "prod.backend.all.purchase-v1"
    }
    assert "prod-purchases" not in routed(router, env="dev", source="backend", category="purchase")


def test_route_3_dev_everything(router: Router) -> None:
    assert routed(router, env="dev", title="5678", category="session_heartbeat") == {
        "dev-everything": "dev.all.all.all-v1"
    }


def test_route_4_matches_2x(router: Router) -> None:
    assert routed(router, title="2345", category="match_started", platform="ps") == {
        "matches-2x": "prod.telemetry.2xxx.match_started-v1"
    }
    assert "matches-2x" not in routed(router, title="1234", category="match_started")
    assert "matches-2x" not in routed(router, title="2345", category="session_heartbeat")
    assert "matches-2x" not in routed(router, env="dev", title="2345", category="match_started")


def test_route_5_crashes_outside_prod(router: Router) -> None:
    assert routed(router, env="dev", title="5678", category="crash_report") == {
        "dev-everything": "dev.all.all.all-v1",
        "crashes-outside-prod": "dev.telemetry.all.crash_report-v1",
    }
    assert routed(router, env="prod", title="5678", category="crash_report") == {}


def test_route_6_small_titles(router: Router) -> None:
    for title in ("3456", "4567"):
        assert routed(router, title=title, category="session_heartbeat", platform="xbox") == {
            "small-titles": f"prod.telemetry.{title}.all-v1"
        }
    assert routed(router, env="dev", source="backend", title="4567", category="purchase") == {
        "dev-everything": "dev.all.all.all-v1",
        "small-titles": "dev.backend.4567.all-v1",
    }


def test_route_7_pc_kills(router: Router) -> None:
    assert routed(router, title="6789", category="player_killed", version=1, platform="pc") == {
        "pc-kills": "prod.telemetry.all.pc_kills-v2"
    }
    assert routed(router, title="6789", category="player_killed", version=1, platform="ps") == {}


def test_route_8_kills_v2(router: Router) -> None:
    assert routed(
        router, source="backend", title="5678", category="player_killed", version=2, platform="xbox"
    ) == {"kills-v2": "prod.telemetry.all.player_killed-v2"}
    assert routed(router, env="dev", title="6789", category="player_killed", version=2, platform="ps") == {
        "dev-everything": "dev.all.all.all-v1",
        "kills-v2": "dev.telemetry.all.player_killed-v2",
    }


def test_fan_out_to_three_routes(router: Router) -> None:
    assert routed(router, title="1234", category="player_killed", version=2, platform="pc") == {
        "prod-1234-by-category": "prod.telemetry.1234.player_killed-v2",
        "pc-kills": "prod.telemetry.all.pc_kills-v2",
        "kills-v2": "prod.telemetry.all.player_killed-v2",
    }


def test_unmatched_record(router: Router) -> None:
    assert router.route(record_headers(title="5678", category="session_heartbeat")) == []


def test_no_route_sends_one_envs_data_to_another_env(router: Router) -> None:
    for env in ("prod", "dev"):
        for title in ("1234", "2345", "3456", "4567", "5678", "6789"):
            for category in (
                "match_started",
                "player_killed",
                "purchase",
                "session_heartbeat",
                "crash_report",
            ):
                for version in (1, 2):
                    for d in router.route(
                        record_headers(env=env, title=title, category=category, version=version)
                    ):
                        assert d.topic.split(".")[0] == env, (d, env)
