# frozen_string_literal: true

require "spec_helper"
require "rack"
require "rack/lint"
require "rack/mock"

RSpec.describe TaskerEvents::MetricsApp do
  let(:namespace) { unique_namespace("metrics") }
  let(:app) { Rack::MockRequest.new(Rack::Lint.new(described_class.new)) }

  def scrape
    response = app.get("/metrics")
    expect(response.status).to eq(200)
    PrometheusText.parse(response.body)
  end

  it "serves the Prometheus text format that a scraper parses" do
    TaskerEvents.start
    3.times { TaskerEvents.publish("metric.checked", { n: 1 }, namespace:, delivery_mode: :fast) }
    TaskerEvents.publish("metric.other", {}, namespace:, delivery_mode: :fast)
    expect(TaskerEvents.flush(timeout: 5)).to be(true)

    response = app.get("/metrics")
    expect(response.content_type).to eq("text/plain; version=0.0.4; charset=utf-8")
    expect(response.headers["content-length"]).to eq(response.body.bytesize.to_s)
    families = PrometheusText.parse(response.body)

    published = "tasker_domain_events_published_total"
    expect(families[published]).to include(type: "counter", help: a_string_matching(/accepted/))
    expect(PrometheusText.value(families, published, "event_name" => "metric.checked",
                                                     "namespace" => namespace)).to eq(3)
    expect(PrometheusText.value(families, published, "event_name" => "metric.other",
                                                     "namespace" => namespace)).to eq(1)
  end

  it "reports the same counters as TaskerEvents.stats" do
    TaskerEvents.start
    recording_subscriber("metric.*")
    2.times { TaskerEvents.publish("metric.checked", {}, namespace:, delivery_mode: :fast) }
    TaskerEvents.publish("metric.durable", {}, namespace:) # no database: dropped
    expect(TaskerEvents.flush(timeout: 5)).to be(true)

    families = scrape
    stats = TaskerEvents.stats
    delivered = lambda do |path|
      PrometheusText.value(families, "tasker_domain_events_delivered_total", "path" => path)
    end
    expect(delivered.call("ruby_subscribers")).to eq(stats[:ruby_subscribers][:delivered])
    expect(delivered.call("rust_subscribers")).to eq(stats[:rust_subscribers][:delivered])
    expect(PrometheusText.value(families, "tasker_domain_events_dropped_total",
                                "path" => "durable", "reason" => "no_database"))
      .to eq(stats[:durable][:dropped][:no_database])
    expect(stats[:durable][:dropped][:no_database]).to be >= 1
    expect(families["tasker_domain_events_queued"][:type]).to eq("gauge")
    expect(PrometheusText.value(families, "tasker_domain_events_subscriber_errors_total",
                                "kind" => "ruby")).to eq(stats[:subscriber_errors][:ruby])
  end

  it "answers HEAD without a body and refuses other methods" do
    head = app.request("HEAD", "/metrics")
    expect(head.status).to eq(200)
    expect(head.body).to eq("")

    post = app.post("/metrics")
    expect(post.status).to eq(405)
    expect(post.headers["allow"]).to eq("GET, HEAD")
  end

  it "can be mounted as the class itself" do
    status, headers, body = described_class.call(Rack::MockRequest.env_for("/"))
    expect(status).to eq(200)
    expect(headers["content-type"]).to start_with("text/plain")
    expect(PrometheusText.parse(body.join)).to include("tasker_domain_events_published_total")
  end
end
