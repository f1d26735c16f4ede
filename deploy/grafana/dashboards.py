"""orderflow's Grafana dashboards, as code (grafana-foundation-sdk).

    python deploy/grafana/dashboards.py [OUT_DIR]

writes overview.json, bus.json and saga.json (default: the chart's
helm/orderflow/files/dashboards, which the chart ships as ConfigMaps for
Grafana's dashboard sidecar). tests/deploy checks that the committed files
are what this writes, that each passes Grafana's dashboard schema
(deploy/grafana/dashboard.schema.json), and that every panel's query returns
series from a Prometheus scraping a running system. Every bus figure comes
from each ingress replica alike: queries take `max` over instances.
"""

import json
import pathlib
import sys

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
WIDTH = 24


class Layout:
    """Places panels left to right, `per_row` a row, rows below each other."""

    def __init__(self, per_row=2, height=8):
        self.per_row, self.height, self.n, self.y = per_row, height, 0, 0
        self.ids = 0

    def id(self):
        """The next panel id (unique in the dashboard)."""
        self.ids += 1
        return self.ids

    def row(self, title):
        if self.n % self.per_row:
            self.y += self.height
        self.n = 0
        y = self.y
        self.y += 1
        return dashboard.Row(title).id(self.id()).grid_pos(GridPos(h=1, w=WIDTH, x=0, y=y))

    def next(self, per_row=None):
        per_row = per_row or self.per_row
        w = WIDTH // per_row
        pos = GridPos(h=self.height, w=w, x=(self.n % per_row) * w, y=self.y)
        self.n += 1
        if self.n % per_row == 0:
            self.y += self.height
        return pos


def query(expr, legend="", ref="A"):
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def series(layout, title, unit, *targets, description=""):
    panel = timeseries.Panel().id(layout.id()).title(title).description(description).datasource(DS).unit(unit)
    panel = panel.grid_pos(layout.next()).line_width(1).fill_opacity(10)
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + i)))
    return panel


def number(layout, title, unit, expr, description=""):
    return (
        stat.Panel()
        .id(layout.id())
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .grid_pos(layout.next(per_row=4))
        .with_target(query(expr).instant())
    )


def board(title, uid, description):
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["orderflow"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )


def overview():
    l = Layout(per_row=4, height=4)
    d = board("orderflow / Overview", "orderflow-overview", "Requests, errors, latency and settle time at the edge.")
    d = d.with_row(l.row("Now"))
    d = d.with_panel(number(l, "Requests", "reqps", "sum(rate(orderflow_http_requests_total[5m]))"))
    d = d.with_panel(
        number(
            l,
            "5xx ratio",
            "percentunit",
            # 0, not "no data", while nothing failed.
            '(sum(rate(orderflow_http_requests_total{status=~"5.."}[5m])) or vector(0))'
            " / sum(rate(orderflow_http_requests_total[5m]))",
        )
    )
    d = d.with_panel(
        number(
            l,
            "p99 settle time",
            "s",
            "histogram_quantile(0.99, sum by (le) (rate(orderflow_command_settle_seconds_bucket[5m])))",
            "From a command accepted to its outcome in the read model.",
        )
    )
    d = d.with_panel(number(l, "Processes not ready", "none", "count(orderflow_process_ready == 0) or vector(0)"))
    l.height, l.per_row = 8, 2
    d = d.with_row(l.row("The API"))
    d = d.with_panel(
        series(l, "Requests by route", "reqps", ("sum by (route) (rate(orderflow_http_requests_total[5m]))", "{{route}}"))
    )
    d = d.with_panel(
        series(
            l,
            "Errors by status",
            "reqps",
            ('sum by (status) (rate(orderflow_http_requests_total{status=~"[45].."}[5m]))', "{{status}}"),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Latency",
            "s",
            ("histogram_quantile(0.5, sum by (le) (rate(orderflow_http_request_duration_seconds_bucket[5m])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(orderflow_http_request_duration_seconds_bucket[5m])))", "p99"),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Settle time by command (p99)",
            "s",
            (
                "histogram_quantile(0.99, sum by (le, command_type) (rate(orderflow_command_settle_seconds_bucket[5m])))",
                "{{command_type}}",
            ),
            description="From a command accepted by the ingress to its outcome in the read model.",
        )
    )
    d = d.with_panel(
        series(l, "Shed at the door", "reqps", ("sum by (why) (rate(orderflow_http_requests_shed_total[5m]))", "{{why}}"))
    )
    d = d.with_panel(
        series(l, "Requests in flight", "none", ("sum(orderflow_http_requests_in_flight)", "in flight"))
    )
    return d.build()


def bus():
    l = Layout(per_row=2, height=8)
    d = board(
        "orderflow / Bus",
        "orderflow-bus",
        "Lag per consumer group and projection, outbox and relay, dead letters.",
    )
    d = d.with_row(l.row("Consumers"))
    d = d.with_panel(
        series(
            l,
            "Lag by group (messages)",
            "none",
            ("max by (group, topic) (orderflow_consumer_group_lag_messages)", "{{group}} {{topic}}"),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Lag by group (age of the oldest unconsumed)",
            "s",
            ("max by (group, topic) (orderflow_consumer_group_lag_seconds)", "{{group}} {{topic}}"),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Lag by partition",
            "none",
            (
                "max by (group, topic, partition) (orderflow_consumer_group_lag_messages)",
                "{{group}} {{topic}}/{{partition}}",
            ),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Consumed",
            "ops",
            ("sum by (group, outcome) (rate(orderflow_bus_messages_consumed_total[5m]))", "{{group}} {{outcome}}"),
        )
    )
    d = d.with_row(l.row("Projections"))
    d = d.with_panel(
        series(
            l,
            "Projection lag (messages)",
            "none",
            ("max by (projection) (orderflow_projection_lag_messages)", "{{projection}}"),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Projection lag (seconds)",
            "s",
            ("max by (projection) (orderflow_projection_lag_seconds)", "{{projection}}"),
        )
    )
    d = d.with_row(l.row("Outbox and dead letters"))
    d = d.with_panel(
        series(
            l,
            "Outbox rows waiting",
            "none",
            ("sum by (job) (orderflow_outbox_unpublished_rows)", "{{job}}"),
            ("sum by (job) (orderflow_outbox_parked_rows)", "{{job}} parked"),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Relay published",
            "ops",
            ("sum by (job) (rate(orderflow_outbox_published_total[5m]))", "{{job}}"),
        )
    )
    d = d.with_panel(
        series(l, "Dead letters", "none", ("max by (topic) (orderflow_dlq_messages)", "{{topic}}"))
    )
    d = d.with_panel(
        series(
            l,
            "Duplicates skipped by the inbox",
            "ops",
            ("sum by (group) (rate(orderflow_inbox_duplicates_total[5m]))", "{{group}}"),
        )
    )
    return d.build()


def saga():
    l = Layout(per_row=4, height=4)
    d = board("orderflow / Saga", "orderflow-saga", "Orders by state, confirmations, cancellations and refunds.")
    d = d.with_row(l.row("Now"))
    for status in ["PENDING", "CONFIRMED", "SHIPPED", "CANCELLED"]:
        d = d.with_panel(number(l, f"Orders {status}", "none", f'max(orderflow_saga_orders{{status="{status}"}})'))
    d = d.with_panel(
        number(
            l,
            "PENDING past their deadline",
            "none",
            "max(orderflow_saga_overdue_orders)",
            "Orders the order service should have cancelled (PAYMENT_TIMEOUT).",
        )
    )
    l.height, l.per_row = 8, 2
    d = d.with_row(l.row("Flow"))
    d = d.with_panel(
        series(
            l,
            "Orders by state",
            "none",
            ("max by (status) (orderflow_saga_orders)", "{{status}}"),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Confirmations and cancellations (per minute)",
            "none",
            ('max(delta(orderflow_saga_orders{status="CONFIRMED"}[1m]))', "confirmed"),
            ("sum by (reason) (max by (reason) (delta(orderflow_saga_cancellations[1m])))", "cancelled {{reason}}"),
        )
    )
    d = d.with_panel(
        series(
            l,
            "Cancellations by reason",
            "none",
            ("max by (reason) (orderflow_saga_cancellations)", "{{reason}}"),
            description="PAYMENT_DECLINED, PAYMENT_TIMEOUT, OUT_OF_STOCK, REQUESTED, ...",
        )
    )
    d = d.with_panel(
        series(
            l,
            "Payments by state",
            "none",
            ("max by (status) (orderflow_saga_payments)", "{{status}}"),
            description="Refunds: PARTIALLY_REFUNDED and REFUNDED.",
        )
    )
    return d.build()


DASHBOARDS = {"overview": overview, "bus": bus, "saga": saga}


def main():
    root = pathlib.Path(__file__).resolve().parents[2]
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "helm/orderflow/files/dashboards"
    out.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"
        (out / f"{name}.json").write_text(text)


if __name__ == "__main__":
    main()
