"""The encoder inside OpenSearch (`tbhns deploy`) against the client-side path, in one run on one cluster.

Starts `tbhns serve`'s app in this process (a thread, a random token), deploys it as a remote model, then:
- ingest: the first `--products` products of `--dataset`, written twice into fresh aliases, once encoded here
  (the encoder's own backend: ONNX when the folder has an export) and once embedded by the cluster through the
  `text_embedding` pipeline (which calls the same app); products per second of each;
- queries: the first `--queries` distinct real queries of the dataset's judgments, each run once in semantic
  and hybrid mode, client-encoded (`knn`, query-vector cache off) and cluster-embedded (`neural`), modes
  interleaved query by query after a warm-up pass; p50 / p95 of `SearchClient.search` wall time;
- agreement: the share of queries whose top 10 is identical between the two paths.

The cluster needs ML Commons (`tbhns opensearch start --ml --port 9295`):
    OPENSEARCH_URL=http://127.0.0.1:9295 python benchmarks/remote_model.py --encoder runs/encoders/minilm \\
        --dataset icecat
Writes benchmarks/results/remote_model_<dataset>.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import uuid
from pathlib import Path

from tbhns_opensearch.api import ServeSettings, create_app
from tbhns_opensearch.api.background import running_app
from tbhns_opensearch.bench.latency import latency_stats
from tbhns_opensearch.catalog.adapters import load_judgments, read_dataset
from tbhns_opensearch.cluster import make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import Encoder, default_backend
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.remote_model import deploy_remote_encoder, ensure_embedding_pipeline, undeploy
from tbhns_opensearch.index.templates import IndexConfig
from tbhns_opensearch.query import SearchClient

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--dataset", default="icecat")
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    config = OpenSearchConfig.from_env()
    client = make_client(config)
    encoder = Encoder(args.encoder, backend=default_backend(args.encoder))
    token = secrets.token_urlsafe(24)
    products = [p for _, p in zip(range(args.products), read_dataset(args.dataset))]
    queries = list(dict.fromkeys(j.query for j in load_judgments(args.dataset)))[: args.queries]
    suffix = uuid.uuid4().hex[:8]
    aliases = {"client": f"bench-client-{suffix}", "pipeline": f"bench-pipeline-{suffix}"}
    serving = SearchClient(config, aliases["client"], encoder)
    with running_app(create_app(ServeSettings(config, warm=False, embed_token=token), search_client=serving)) as url:
        model = deploy_remote_encoder(client, url, token, f"tbhns-bench-{suffix}")
        pipeline = f"bench-embed-{suffix}"
        ensure_embedding_pipeline(client, pipeline, model.model_id)
        try:
            ingest = {
                path: ingest_products(
                    client,
                    products,
                    encoder,
                    IndexConfig(alias=alias),
                    IngestConfig(progress=False, pipeline=pipeline if path == "pipeline" else None),
                )
                for path, alias in aliases.items()
            }
            local = SearchClient(config, aliases["pipeline"], encoder, cache_size=0)
            neural = SearchClient(config, aliases["pipeline"], encoder, model_id=model.model_id)
            runs = {
                (mode, name): c
                for mode in ("semantic", "hybrid")
                for name, c in (("knn, encoded here", local), ("neural", neural))
            }
            for (mode, _), search in runs.items():  # warm-up: model loaded, pipelines created
                search.search("warm up " + mode, mode=mode)
            times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
            tops: dict[tuple[str, str], list[list[str]]] = {key: [] for key in runs}
            for query in queries:
                for key, search in runs.items():
                    response = search.search(query, mode=key[0], k=10)
                    times[key].append(response.took_ms / 1000)
                    tops[key].append([hit.id for hit in response.hits])
        finally:
            undeploy(client, model.model_id)
            for alias in aliases.values():
                client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)
                client.indices.delete_index_template(name=IndexConfig(alias=alias).template_name, ignore=[404])
    lines = [
        f"# The encoder inside OpenSearch vs the client-side path ({args.dataset}, real catalog and real queries)",
        "",
        f"Encoder `{args.encoder}` ({encoder.backend}); {len(products)} products; {len(queries)} distinct judged "
        f"queries. One run on {platform.machine()} with {os.cpu_count()} cores; the node, this client and the "
        "embedding endpoint share them. "
        f"`python benchmarks/remote_model.py --encoder {args.encoder} --dataset {args.dataset}`.",
        "",
        "| ingest path | products/s |",
        "|---|---|",
        *(
            "| "
            + (
                "encoded here, vectors in the bulk"
                if path == "client"
                else "text_embedding pipeline (cluster calls /embed)"
            )
            + f" | {summary.products_per_s:.1f} |"
            for path, summary in ingest.items()
        ),
        "",
        "| search | p50 ms | p95 ms | top 10 identical to the other path |",
        "|---|---|---|---|",
    ]
    for mode in ("semantic", "hybrid"):
        same = sum(a == b for a, b in zip(tops[(mode, "knn, encoded here")], tops[(mode, "neural")])) / len(queries)
        for name in ("knn, encoded here", "neural"):
            stats = latency_stats(times[(mode, name)])
            lines.append(f"| {mode}, {name} | {stats.p50_ms:.1f} | {stats.p95_ms:.1f} | {same:.0%} |")
    out = RESULTS / f"remote_model_{args.dataset}.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
