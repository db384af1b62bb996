// Package deploy is cutover's operational kit, as files for the tools that
// run it: a Grafana dashboard (grafana/cutover.json), Prometheus alert rules
// and their unit tests (prometheus/alerts.yml, prometheus/alerts_test.yml),
// and an ECS example (ecs/: the task definition with legacy gunicorn beside
// cutover, the ALB target group, the service, the config baked into the
// image). docs/operating.md explains each piece.
//
// The package has no code; its tests keep the kit true to the code:
//   - every metric name, label and label value the dashboard and the rules
//     use is in the README's metric table (the table itself is checked
//     against the exported metrics by proxy.TestREADMEListsEveryMetric);
//   - promtool checks the rules and runs their unit tests;
//   - a real Prometheus scrapes a real `cutover serve` (real gunicorn, Redis
//     and the Bedrock stub) under traffic and faults, and every dashboard
//     query returns data and every rule evaluates;
//   - the ECS example's timeouts, ports, health check and secrets agree with
//     each other and with cutover's config as the task would load it.
package deploy
