# frozen_string_literal: true

require "spec_helper"
require "tasker_events/cli"
require "json"
require "pg"

RSpec.describe TaskerEvents::CLI::Tail, :integration do
  let(:namespace) { unique_namespace("clit") }
  let(:queue) { "#{namespace}_domain_events" }
  let(:env) { { "DATABASE_URL" => PrivatePostgres.url } }
  let(:connection) { PG.connect(PrivatePostgres.url) }

  after { connection.close }

  def read_counts
    connection.exec("SELECT msg_id, read_ct FROM pgmq.q_#{queue} ORDER BY msg_id")
              .map { |row| [Integer(row["msg_id"]), Integer(row["read_ct"])] }
  end

  def event_ids(result)
    result.stdout.lines.map { |line| line[/event_id=(\S+)/, 1] }
  end

  context "with events in the queue" do
    let!(:ids) { publish_durable(namespace, 12) }

    it "shows the last 10 events, oldest first, one line each" do
      result = run_cli("tail", namespace, env:)

      expect(result.exitstatus).to eq(0), result.to_s
      expect(event_ids(result)).to eq(ids.last(10))
      line = result.stdout.lines.last
      msg_id = read_counts.last.first
      uuid = /\h{8}-\h{4}-\h{4}-\h{4}-\h{12}/
      time = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/
      expect(line).to match(/\A#{msg_id} +#{time}  payment\.processed +durable +/)
      expect(line).to end_with(" correlation_id=#{line[uuid]} event_id=#{ids.last}\n")
      expect(line).not_to include("payload")
    end

    it "shows as many as --limit asks for" do
      expect(event_ids(run_cli("tail", namespace, "--limit", "3", env:))).to eq(ids.last(3))
      expect(event_ids(run_cli("tail", namespace, "-n", "20", env:))).to eq(ids)
      expect(run_cli("tail", namespace, "-n", "0", env:).stdout).to be_empty
    end

    it "adds the payload with --payload" do
      result = run_cli("tail", namespace, "-n", "1", "--payload", env:)
      expect(result.stdout).to end_with(" payload={\"n\":11}\n")
    end

    it "prints one JSON object per line with --json" do
      result = run_cli("tail", namespace, "--limit", "2", "--json", env:)

      expect(result.exitstatus).to eq(0), result.to_s
      rows = result.stdout.lines.map { |line| JSON.parse(line) }
      expect(rows.map { |row| row.dig("message", "event_id") }).to eq(ids.last(2))
      expect(rows.first.keys).to eq(%w[msg_id read_ct enqueued_at vt message headers])
      expect(rows.first["message"]).to include("event_name" => "payment.processed",
                                               "payload" => { "n" => 10 })
      expect(rows.first["headers"]).to include("event_id" => ids[10])
    end

    it "consumes nothing: read counts stay, and consumers still read every message" do
      before = read_counts
      expect(before.map(&:last)).to all(eq(0))

      expect(run_cli("tail", namespace, "-n", "20", "--json", env:).exitstatus).to eq(0)
      expect(run_cli("tail", namespace, env:).exitstatus).to eq(0)

      expect(read_counts).to eq(before)
      read = connection.exec_params("SELECT message FROM pgmq.read($1, 30, 100)", [queue])
      expect(read.map { |row| JSON.parse(row["message"])["event_id"] }).to eq(ids)
    end
  end

  it "exits 4 for a missing queue, naming it and the queues that exist" do
    publish_durable(namespace, 1)
    missing = unique_namespace("absent")

    result = run_cli("tail", missing, env:)

    expect(result.exitstatus).to eq(4), result.to_s
    expect(result.stderr).to include("queue #{missing}_domain_events does not exist",
                                     "existing *_domain_events queues:", queue)
  end

  it "exits 2 for an invalid namespace or a missing one" do
    invalid = run_cli("tail", "Payments-EU", env:)
    expect(invalid.exitstatus).to eq(2)
    expect(invalid.stderr).to include('invalid namespace "Payments-EU"')

    expect(run_cli("tail", env:).stderr).to include("tail needs a NAMESPACE")
    expect(run_cli("tail", namespace, "--limit", "-1", env:).exitstatus).to eq(2)
  end

  describe "--follow" do
    let(:follower) do
      spawn_cli("tail", namespace, "--follow", "--limit", "1", "--interval", "0.1", env:)
    end

    before { publish_durable(namespace, 1) }
    after { follower.kill }

    %w[INT TERM].each do |signal|
      it "shows events as they arrive, without consuming them, until SIG#{signal} (exit 0)" do
        follower.wait_for(:stderr, /waiting for new events in #{queue}/)
        expect(follower.wait_for(:stdout, /event_id=/)).to include("payment.processed")

        later = publish_durable(namespace, 2, name: "payment.refunded")
        lines = Array.new(2) { follower.wait_for(:stdout, /event_id=/) }
        expect(lines.map { |line| line[/event_id=(\S+)/, 1] }).to eq(later)

        expect(follower.stop(signal).exitstatus).to eq(0)
        expect(read_counts.map(&:last)).to eq([0, 0, 0])
      end
    end
  end
end
