"""networkPolicy: egress only to named destinations; no rule opens a port to any address."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from .helm import CHART_DIR, NAMESPACE, RELEASE, Doc, Helm, HelmResult, fake_kube_api, find_one, parse_docs

CI = CHART_DIR / "ci"
BACKEND_TO = 'networkPolicy.backend.to=[{"podSelector":{"matchLabels":{"app":"backend"}}}]'
API_CIDRS = 'networkPolicy.apiServer.cidrs=["10.0.0.1/32"]'


def egress(docs: list[Doc]) -> list[Doc]:
    rules: list[Doc] = find_one(docs, "NetworkPolicy")["spec"]["egress"]
    return rules


def assert_every_rule_has_to(docs: list[Doc]) -> None:
    rules = egress(docs)
    assert rules
    for rule in rules:
        assert rule.get("to"), f"regla de egress sin `to` (abre sus puertos a todo): {rule}"
        for peer in rule["to"]:
            assert peer and set(peer) <= {"podSelector", "namespaceSelector", "ipBlock"}, peer


@pytest.mark.parametrize("name", ["full-values", "sharded-values", "integration-off-values"])
def test_ci_network_policies_name_every_destination(ci_docs: dict[str, list[Doc]], name: str) -> None:
    assert_every_rule_has_to(ci_docs[name])


@pytest.mark.parametrize(
    ("set_values", "set_json", "rules"),
    [
        ([], [BACKEND_TO, API_CIDRS], 3),
        (["kubernetes.integration.enabled=false"], [BACKEND_TO], 2),
        (["kubernetes.integration.mode=off"], [BACKEND_TO], 2),
        (
            [],
            [
                BACKEND_TO,
                API_CIDRS,
                'networkPolicy.extraEgress=[{"to":[{"ipBlock":{"cidr":"192.0.2.0/24"}}],'
                '"ports":[{"protocol":"TCP","port":9090}]}]',
            ],
            4,
        ),
    ],
)
def test_every_egress_rule_has_to(helm: Helm, set_values: list[str], set_json: list[str], rules: int) -> None:
    docs = helm.render(set_values=["networkPolicy.enabled=true", *set_values], set_json=set_json)
    assert len(egress(docs)) == rules
    assert_every_rule_has_to(docs)


def test_dns_goes_to_kube_dns_only_by_default(helm: Helm) -> None:
    docs = helm.render(set_values=["networkPolicy.enabled=true"], set_json=[BACKEND_TO, API_CIDRS])
    dns = egress(docs)[0]
    assert dns == {
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
    }


@pytest.mark.parametrize(
    ("set_values", "set_json", "message"),
    [
        # The backend's destinations are required: a clear message with an example.
        ([], [API_CIDRS], "networkPolicy.backend.to está vacío"),
        (["kubernetes.integration.enabled=false"], [], "networkPolicy.backend.to está vacío"),
        # helm template cannot look the API server up: set the CIDRs.
        ([], [BACKEND_TO], "networkPolicy.apiServer.cidrs está vacío"),
        # Emptying the DNS destinations would open port 53 to any address.
        ([], [BACKEND_TO, API_CIDRS, "networkPolicy.dns.to=[]"], "networkPolicy.dns.to está vacío"),
    ],
)
def test_missing_destinations_fail(helm: Helm, set_values: list[str], set_json: list[str], message: str) -> None:
    result = helm.template(set_values=["networkPolicy.enabled=true", *set_values], set_json=set_json)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_backend_message_shows_how(helm: Helm) -> None:
    result = helm.template(set_values=["networkPolicy.enabled=true"], set_json=[API_CIDRS])
    assert "--set-json 'networkPolicy.backend.to=[" in result.stderr
    assert "podSelector" in result.stderr and "ipBlock" in result.stderr
    result = helm.template(set_values=["networkPolicy.enabled=true"], set_json=[BACKEND_TO])
    assert "--set-json 'networkPolicy.apiServer.cidrs=[" in result.stderr
    assert "kubectl get endpoints kubernetes" in result.stderr


def test_nothing_required_while_disabled(helm: Helm) -> None:
    helm.template(set_json=["networkPolicy.dns.to=[]"]).check()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("networkPolicy:\n  extraEgress:\n    - ports: [{port: 25}]\n", "/networkPolicy/extraEgress"),
        ("networkPolicy:\n  extraEgress:\n    - to: []\n", "/networkPolicy/extraEgress"),
        ("networkPolicy:\n  backend:\n    to: [{podSelectr: {}}]\n", "podSelectr"),
        ("networkPolicy:\n  backend:\n    to: [{}]\n", "/networkPolicy/backend/to"),
        ("networkPolicy:\n  backend:\n    to: [{ipBlock: {}}]\n", "cidr"),
    ],
)
def test_schema_rejects_open_or_malformed_peers(
    helm: Helm, values_file: Callable[..., Path], text: str, message: str
) -> None:
    result = helm.template(values_file(text))
    assert result.returncode != 0, text
    assert message in result.stderr, result.stderr


# --------------------------------------------------------------------------------------
# The API server's addresses from the cluster (`lookup`, with --dry-run=server)
# --------------------------------------------------------------------------------------

SLICE_PATH = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"
ENDPOINTS_PATH = "/api/v1/namespaces/default/endpoints/kubernetes"
ENDPOINT_SLICE: Doc = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {"name": "kubernetes", "namespace": "default"},
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["172.18.0.2"]}, {"addresses": ["172.18.0.3"]}],
    "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
}
ENDPOINTS: Doc = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "kubernetes", "namespace": "default"},
    "subsets": [
        {
            "addresses": [{"ip": "10.20.0.5"}, {"ip": "fd00::5"}],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP"}],
        }
    ],
}


@contextmanager
def cluster(helm: Helm, objects: Mapping[str, Doc]) -> Iterator[list[str]]:
    with fake_kube_api(objects) as api:
        helm.use_kube_api(api.url)
        try:
            yield api.requests
        finally:
            helm.use_kube_api("http://127.0.0.1:9")


def run_on_server(helm: Helm, *args: str) -> HelmResult:
    """`helm template` of the NetworkPolicy (on) against the fake API server, as run."""
    return helm.run(
        "template",
        RELEASE,
        str(CHART_DIR),
        "--namespace",
        NAMESPACE,
        "--dry-run=server",
        "--disable-openapi-validation",
        "--show-only",
        "templates/networkpolicy.yaml",
        "--set",
        "networkPolicy.enabled=true",
        "--set-json",
        BACKEND_TO,
        *args,
    )


def template_on_server(helm: Helm, *args: str) -> list[Doc]:
    return parse_docs(run_on_server(helm, *args).check().stdout)


def api_rule(docs: list[Doc]) -> Doc:
    rule: Doc = egress(docs)[2]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
    return rule


def test_api_server_from_the_endpoint_slice(helm: Helm) -> None:
    with cluster(helm, {SLICE_PATH: ENDPOINT_SLICE, ENDPOINTS_PATH: ENDPOINTS}) as requests:
        docs = template_on_server(helm)
    assert SLICE_PATH in requests
    assert api_rule(docs)["to"] == [
        {"ipBlock": {"cidr": "172.18.0.2/32"}},
        {"ipBlock": {"cidr": "172.18.0.3/32"}},
    ]
    assert_every_rule_has_to(docs)


def test_api_server_from_the_endpoints_when_no_slice(helm: Helm) -> None:
    with cluster(helm, {ENDPOINTS_PATH: ENDPOINTS}) as requests:
        docs = template_on_server(helm)
    assert ENDPOINTS_PATH in requests
    assert api_rule(docs)["to"] == [
        {"ipBlock": {"cidr": "10.20.0.5/32"}},
        {"ipBlock": {"cidr": "fd00::5/128"}},
    ]


def test_api_server_cidrs_win_over_the_lookup(helm: Helm) -> None:
    with cluster(helm, {SLICE_PATH: ENDPOINT_SLICE}) as requests:
        docs = template_on_server(helm, "--set-json", API_CIDRS)
    assert SLICE_PATH not in requests and ENDPOINTS_PATH not in requests
    assert api_rule(docs)["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def test_api_server_unknown_to_the_cluster_fails(helm: Helm) -> None:
    with cluster(helm, {}):
        result = run_on_server(helm)
    assert result.returncode != 0
    assert "networkPolicy.apiServer.cidrs está vacío" in result.stderr, result.stderr


def test_peers_render_as_given(helm: Helm) -> None:
    peers = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "markets"}},
            "podSelector": {"matchLabels": {"app": "backend"}},
        },
        {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}},
    ]
    docs = helm.render(
        set_values=["networkPolicy.enabled=true", "kubernetes.integration.enabled=false"],
        set_json=[f"networkPolicy.backend.to={json.dumps(peers)}"],
    )
    assert egress(docs)[1]["to"] == peers
