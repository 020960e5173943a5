from fastapi.testclient import TestClient

from tests.conftest import City


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    r = client.get("/no-such-route")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 404


def test_city_fixture_builds_tree(city: City) -> None:
    assert len(city.stations) == 4
    assert city.stations[0].path.startswith(city.districts[0].path)
