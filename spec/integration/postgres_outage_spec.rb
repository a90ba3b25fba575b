# frozen_string_literal: true

require "spec_helper"
require "pg"
require "json"

# Durable delivery while the private PostgreSQL cluster is stopped, started late, or has its
# connections killed. Events must be kept and written once the database is back: none lost,
# in publish order per namespace, every one counted.
RSpec.describe "durable delivery through PostgreSQL faults", :integration do
  let(:namespace) { unique_namespace("outage") }
  let(:log) { StringIO.new }

  before do
    skip "DATABASE_URL is a server these specs may not stop" unless PrivatePostgres.managed?
    TaskerEvents.install_pgmq(PrivatePostgres.url)
  end

  # Whatever happens, the next example finds the cluster running.
  after { PrivatePostgres.start }

  def start_events(**settings)
    TaskerEvents.start(database_url: PrivatePostgres.url, connect_timeout_ms: 500,
                       logger: Logger.new(log, level: Logger::WARN), **settings)
  end

  def publish_range(range)
    range.map { |seq| TaskerEvents.publish("outage.tested", { seq: }, namespace:) }
  end

  # Every row of the namespace's queue as [event_id, seq], in msg_id order.
  def rows
    connection = PG.connect(PrivatePostgres.url)
    sql = "SELECT message FROM pgmq.q_#{namespace}_domain_events ORDER BY msg_id"
    connection.exec(sql).map do |row|
      message = JSON.parse(row["message"])
      [message["event_id"], message.dig("payload", "seq")]
    end
  ensure
    connection&.close
  end

  # accepted = delivered + dropped + queued on the durable path, and nothing dropped.
  def expect_every_event_accounted_for(published)
    durable = TaskerEvents.stats[:durable]
    expect_balanced(durable)
    expect(durable[:dropped].values.sum).to eq(@dropped_before)
    expect(durable[:delivered] - @delivered_before).to eq(published)
  end

  def expect_balanced(path)
    settled = path[:delivered] + path[:dropped].values.sum
    expect(path[:accepted]).to eq(settled + path[:queued])
  end

  def remember_counters
    durable = TaskerEvents.stats[:durable]
    @dropped_before = durable[:dropped].values.sum
    @delivered_before = durable[:delivered]
  end

  # Each id appears at least once, in order of first appearance; a repeat is a write whose
  # outcome the publisher could not know (at-least-once), never a different event.
  def expect_all_written_in_order(ids)
    found = rows
    first_seen = found.map(&:first).uniq
    expect(first_seen).to eq(ids)
    expect(found.to_h.values_at(*ids)).to eq((0...ids.size).to_a)
  end

  it "keeps 10,000 events through a 2 s outage and writes them all, in order, afterwards" do
    start_events(command_buffer_size: 4096)
    remember_counters
    ids = publish_range(0...3000)
    PrivatePostgres.stop
    stopped_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    ids += publish_range(3000...7000)
    down_for = Process.clock_gettime(Process::CLOCK_MONOTONIC) - stopped_at
    sleep(2 - down_for) if down_for < 2
    expect(TaskerEvents.stats[:durable][:queued]).to be_positive

    PrivatePostgres.start
    ids += publish_range(7000...10_000)
    expect(ids).to all(be_a(String))
    expect(TaskerEvents.flush(timeout: 60)).to be(true)

    expect_all_written_in_order(ids)
    expect_every_event_accounted_for(10_000)
    expect(log.string.scan("durable write failed").size).to be_between(1, 3)
    expect(log.string).to include("durable writes resumed",
                                  "queue_name=#{namespace}_domain_events")
  end

  it "starts while PostgreSQL is down and writes what was published once it is up" do
    PrivatePostgres.stop
    expect(start_events(install_pgmq: true)).to be(true)
    remember_counters
    ids = publish_range(0...100)
    sleep 0.5
    PrivatePostgres.start
    expect(TaskerEvents.flush(timeout: 60)).to be(true)

    expect_all_written_in_order(ids)
    expect_every_event_accounted_for(100)
  end

  it "writes again after its connections are terminated" do
    start_events
    remember_counters
    ids = publish_range(0...50)
    expect(TaskerEvents.flush(timeout: 10)).to be(true)

    admin = PG.connect(PrivatePostgres.url)
    terminated = admin.exec(<<~SQL).ntuples
      SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = 'tasker_events' AND pid <> pg_backend_pid()
    SQL
    admin.close
    expect(terminated).to be_positive

    ids += publish_range(50...100)
    expect(TaskerEvents.flush(timeout: 30)).to be(true)
    expect_all_written_in_order(ids)
    expect_every_event_accounted_for(100)
  end

  it "drops only what does not fit in durable_buffer_size, counted and logged briefly" do
    PrivatePostgres.stop
    start_events(durable_buffer_size: 100, command_buffer_size: 10,
                 shutdown_drain_timeout_ms: 200)
    before = TaskerEvents.stats[:durable]
    ids = publish_range(0...1000)
    sleep 0.2
    durable = TaskerEvents.stats[:durable]
    accepted = durable[:accepted] - before[:accepted]
    dropped = durable[:dropped][:channel_full] - before[:dropped][:channel_full]
    queued = durable[:queued] - before[:queued]

    expect(ids.compact.size).to eq(1000 - dropped)
    expect(accepted).to eq(1000)
    # The buffer and the channel hold at most their capacities; everything else is dropped.
    expect(queued).to be <= 110
    expect(dropped).to eq(accepted - queued)
    # At most 20 lines a second, however many were dropped (the burst may straddle two).
    expect(log.string.scan(/domain event dropped /).size).to be_between(1, 40)
  end
end
