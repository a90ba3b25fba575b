# frozen_string_literal: true

require "spec_helper"
require "pg"
require "json"
require "timeout"

# Forking servers: a child gets a working system of its own without any call from the user,
# the parent is unaffected, and nothing the parent queued is delivered by the child.
RSpec.describe "TaskerEvents after fork", :integration do
  let(:namespace) { unique_namespace("fork") }

  # Runs the block in a forked child and returns what it returned, as JSON. The child leaves
  # with exit! so that the parent's at_exit hooks (RSpec's, the private cluster's) stay out.
  # The block is named: Ruby 3.3 refuses an anonymous one used inside the fork block.
  # rubocop:disable Naming/BlockForwarding
  def in_child(&block)
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      writer.write(JSON.generate(outcome_of(&block)))
      exit!(0)
    end
    writer.close
    output = Timeout.timeout(60) { reader.read }
    Process.wait(pid)
    parsed = JSON.parse(output)
    raise "child failed: #{parsed["error"]}" if parsed.key?("error")

    parsed["ok"]
  end
  # rubocop:enable Naming/BlockForwarding

  def outcome_of
    { "ok" => yield }
  rescue Exception => e # rubocop:disable Lint/RescueException
    { "error" => "#{e.class}: #{e.message}" }
  end

  def received_ids(subscriber)
    subscriber.received.map { |event| event[:event_id] }
  end

  it "gives the child a working system on its first call, and leaves the parent's alone" do
    TaskerEvents.start
    subscriber = recording_subscriber("fork.*")
    before_fork = TaskerEvents.publish("fork.before", {}, namespace:, delivery_mode: :fast)
    expect(TaskerEvents.flush(timeout: 5)).to be(true)

    child = in_child do
      id = TaskerEvents.publish("fork.child", {}, namespace:, delivery_mode: :fast)
      flushed = TaskerEvents.flush(timeout: 10)
      stats = TaskerEvents.stats
      { "id" => id, "flushed" => flushed, "received" => received_ids(subscriber),
        "published_fast" => stats[:published][:fast],
        "drain_thread" => TaskerEvents.event_system.drain_thread&.alive?,
        "shutdown" => TaskerEvents.shutdown[:dropped] }
    end

    expect(child["id"]).to be_a(String)
    expect(child["flushed"]).to be(true)
    # The child's subscriber object is a copy: it already held the parent's event, and got
    # the child's from the child's own drain thread.
    expect(child["received"]).to eq([before_fork, child["id"]])
    expect(child["published_fast"]).to eq(1)
    expect(child["drain_thread"]).to be(true)
    expect(child["shutdown"]).to eq(0)

    after_fork = TaskerEvents.publish("fork.after", {}, namespace:, delivery_mode: :fast)
    expect(TaskerEvents.flush(timeout: 5)).to be(true)
    expect(received_ids(subscriber)).to eq([before_fork, after_fork])
  end

  it "never writes the parent's queued durable events from the child" do
    url = PrivatePostgres.url
    TaskerEvents.start(database_url: url, install_pgmq: true, command_buffer_size: 4096)
    TaskerEvents.publish("fork.warmup", {}, namespace:)
    expect(TaskerEvents.flush(timeout: 10)).to be(true)
    dropped_before = TaskerEvents.stats[:durable][:dropped].values.sum

    # Published right before the fork, so many are still queued in the parent when it forks.
    parent_ids = Array.new(2000) { |seq| TaskerEvents.publish("fork.parent", { seq: }, namespace:) }
    child_ids = in_child do
      ids = Array.new(5) { |seq| TaskerEvents.publish("fork.child", { seq: }, namespace:) }
      raise "child flush timed out" unless TaskerEvents.flush(timeout: 30)

      TaskerEvents.shutdown
      ids
    end
    expect(TaskerEvents.flush(timeout: 30)).to be(true)

    connection = PG.connect(url)
    rows = connection.exec(<<~SQL).map { |row| row["id"] }
      SELECT message->>'event_id' AS id FROM pgmq.q_#{namespace}_domain_events
      WHERE message->>'event_name' <> 'fork.warmup'
    SQL
    connection.close
    expect(rows.size).to eq(2005)
    expect(rows).to match_array(parent_ids + child_ids)
    expect(TaskerEvents.stats[:durable][:dropped].values.sum).to eq(dropped_before)
  end

  it "restarts when asked, once, and only in a child that had a running system" do
    TaskerEvents.start
    expect(TaskerEvents.after_fork).to be(false)
    child = in_child { [TaskerEvents.after_fork, TaskerEvents.after_fork, TaskerEvents.started?] }
    expect(child).to eq([true, false, true])

    TaskerEvents.shutdown
    expect(in_child { [TaskerEvents.after_fork, TaskerEvents.started?] }).to eq([false, false])
  end
end
