# frozen_string_literal: true

require "spec_helper"
require "tasker_events/cli"
require "json"
require "pg"

RSpec.describe TaskerEvents::CLI::Queues, :integration do
  let(:namespace) { unique_namespace("cliq") }
  let(:queue) { "#{namespace}_domain_events" }
  let(:env) { { "DATABASE_URL" => PrivatePostgres.url } }

  before do
    publish_durable(namespace, 3)
    TaskerEvents.shutdown
  end

  it "prints an aligned table with PGMQ's metrics for every *_domain_events queue" do
    result = run_cli("queues", env:)

    expect(result.exitstatus).to eq(0), result.to_s
    header, *rows = result.stdout.lines.map(&:chomp)
    expect(header.split(/\s{2,}/)).to eq(["QUEUE", "LENGTH", "OLDEST", "NEWEST", "TOTAL SENT"])
    row = rows.find { |line| line.start_with?("#{queue} ") }
    expect(row).not_to be_nil, result.stdout
    expect(row.split).to match([queue, "3", /\A\d+s\z/, /\A\d+s\z/, "3"])
    expect(rows.map(&:size).uniq).to eq([header.size]), "columns are aligned"
    expect(rows).to all(match(/\A\S+_domain_events /))
  end

  it "prints the same metrics as JSON with --json" do
    result = run_cli("queues", "--json", env:)

    expect(result.exitstatus).to eq(0), result.to_s
    listed = JSON.parse(result.stdout).find { |q| q["queue_name"] == queue }
    expect(listed).to include("namespace" => namespace, "queue_length" => 3,
                              "total_messages" => 3)
    expect(listed["oldest_msg_age_sec"]).to be_between(0, 60)
    expect(listed["newest_msg_age_sec"]).to be <= listed["oldest_msg_age_sec"]
  end

  it "counts consumed messages in the total sent, not in the length" do
    connection = PG.connect(PrivatePostgres.url)
    msg_id = connection.exec_params("SELECT msg_id FROM pgmq.read($1, 30, 1)", [queue])
                       .getvalue(0, 0)
    connection.exec_params("SELECT pgmq.delete($1, $2::bigint)", [queue, msg_id])
    connection.close

    listed = JSON.parse(run_cli("queues", "--json", env:).stdout)
                 .find { |q| q["queue_name"] == queue }
    expect(listed).to include("queue_length" => 2, "total_messages" => 3)
  end

  it "exits 4 and says how to install PGMQ when the database has none" do
    with_fresh_database do |url|
      result = run_cli("queues", "--database-url", url)

      expect(result.exitstatus).to eq(4), result.to_s
      expect(result.stderr).to include("PGMQ is not installed", "tasker-events install")
    end
  end
end
