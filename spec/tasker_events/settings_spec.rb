# frozen_string_literal: true

require "spec_helper"

# One group per worker.toml setting, each showing through what a caller can observe (return
# values, counters, log lines, threads) that the setting does what the configuration reference
# says. Values are chosen far from the defaults, so that a setting that was ignored (or replaced
# by its default) fails an example rather than passing by luck.
RSpec.describe "TaskerEvents settings" do
  let(:namespace) { unique_namespace("settings") }
  let(:log) { StringIO.new }
  let(:logger) { Logger.new(log) }
  let(:success) { { success: true, result: { amount: 1 } } }

  after { TaskerEvents.logger = nil }

  def publish_fast(payload = {}, name: "setting.checked")
    TaskerEvents.publish(name, payload, namespace:, delivery_mode: :fast)
  end

  # A subscriber that stays in every event until `gate` is closed, telling `entered` each
  # time, so that whatever is published meanwhile stays queued for the drain thread.
  def parked_subscriber(gate, entered)
    recording_subscriber("setting.*") do
      entered << true
      gate.pop
    end
  end

  def expect_entered(entered)
    expect(wait_until { !entered.empty? }).to be(true)
  end

  describe "broadcast_buffer_size" do
    [2, 5].each do |size|
      it "with #{size}, keeps #{size} events for a busy Ruby subscriber and drops the rest" do
        gate = Queue.new
        entered = Queue.new
        subscriber = parked_subscriber(gate, entered)
        TaskerEvents.start(broadcast_buffer_size: size, dispatch_timeout_ms: 60_000,
                           log_dropped_events: false)
        publish_fast
        # The drain thread now holds the first event, so the queue is empty and stays unread.
        expect_entered(entered)

        burst = Thread.new do
          stat_change(:ruby_subscribers, :dropped, :channel_full) { 10.times { publish_fast } }
        end
        # The subscriber is parked for good: a publish that waited for room would never return.
        expect(burst.join(5)).not_to be_nil
        expect(burst.value).to eq(10 - size)

        gate.close
        expect(TaskerEvents.flush(timeout: 5)).to be(true)
        expect(subscriber.received.size).to eq(1 + size)
      ensure
        gate.close
      end
    end
  end

  describe "log_subscriber_errors" do
    def failing_subscriber
      recording_subscriber("setting.*") { raise ArgumentError, "refused by the spec" }
    end

    def errors_counted
      stat_change(:subscriber_errors, :ruby) do
        publish_fast
        expect(TaskerEvents.flush(timeout: 5)).to be(true)
      end
    end

    it "when true, logs a subscriber's error to the logger given to start" do
      failing_subscriber
      TaskerEvents.start(logger:, log_subscriber_errors: true)
      expect(errors_counted).to eq(1)
      expect(log.string).to include("raised ArgumentError: refused by the spec",
                                    "event_name=setting.checked", "namespace=#{namespace}")
    end

    it "when false, counts the error without logging it" do
      failing_subscriber
      TaskerEvents.start(logger:, log_subscriber_errors: false)
      expect(errors_counted).to eq(1)
      expect(log.string).not_to include("ArgumentError")
    end
  end

  describe "dispatch_timeout_ms" do
    it "abandons a Ruby subscriber past it for that event only; others still get every event" do
      gate = Queue.new
      finished = []
      slow = recording_subscriber("setting.*") do |event|
        # Never released while the example runs: only the timeout gets past this.
        gate.pop if event[:payload][:stall]
        finished << event[:payload][:n]
      end
      other = recording_subscriber("setting.*")
      TaskerEvents.start(logger:, dispatch_timeout_ms: 200)

      timeouts = stat_change(:subscriber_timeouts, :ruby) do
        publish_fast({ n: 1, stall: true })
        publish_fast({ n: 2 })
        expect(TaskerEvents.flush(timeout: 5)).to be(true)
      end
      expect(timeouts).to eq(1)
      expect(finished).to eq([2])
      expect(slow.received.size).to eq(2)
      expect(other.received.map { |event| event[:payload][:n] }).to eq([1, 2])
      expect(log.string).to include("abandoned", "event_name=setting.checked")
    ensure
      gate.close
    end

    it "lets a subscriber that finishes within it complete" do
      finished = []
      recording_subscriber("setting.*") do
        sleep 0.2
        finished << true
      end
      TaskerEvents.start(dispatch_timeout_ms: 3_000)
      timeouts = stat_change(:subscriber_timeouts, :ruby) do
        publish_fast
        expect(TaskerEvents.flush(timeout: 5)).to be(true)
      end
      expect(timeouts).to eq(0)
      expect(finished).to eq([true])
    end
  end

  describe "command_buffer_size" do
    # Many declared events per completion make the dispatcher far slower than a caller's loop.
    def busy_template
      events = Array.new(40) { |i| { name: "setting.step_#{i}", delivery_mode: "fast" } }
      write_template(namespace, "charge" => events)
    end

    def dispatch_burst(count)
      Array.new(count) do
        TaskerEvents.dispatch_step_events(step_context(namespace, "charge"), success)
      end
    end

    it "refuses step completions once the dispatcher's channel is full, and counts them" do
      TaskerEvents.start(templates: [busy_template], command_buffer_size: 1,
                         log_dropped_events: false)
      results = nil
      refused = stat_change(:dispatch, :dropped, :channel_full) do
        expect { results = dispatch_burst(200) }.not_to raise_error
      end
      expect(results.count(false)).to be_positive
      expect(refused).to eq(results.count(false))
      expect(results.count(true) + refused).to eq(200)
    end

    it "accepts the same burst when the channel has room for it" do
      TaskerEvents.start(templates: [busy_template], command_buffer_size: 1000,
                         log_dropped_events: false)
      refused = stat_change(:dispatch, :dropped, :channel_full) do
        expect(dispatch_burst(200)).to all(be(true))
      end
      expect(refused).to eq(0)
    end

    context "with a database that cannot be reached" do
      # Nothing listens on port 1, so the durable publisher keeps its first event for a retry;
      # with a durable buffer of one event it takes no further events from the channel.
      def start_unreachable(command_buffer_size)
        TaskerEvents.start(database_url: "postgresql://postgres@127.0.0.1:1/unreachable",
                           command_buffer_size:, durable_buffer_size: 1,
                           connect_timeout_ms: 3_000, shutdown_drain_timeout_ms: 200,
                           log_dropped_events: false)
      end

      def durable_burst
        ids = nil
        refused = stat_change(:durable, :dropped, :channel_full) do
          expect do
            ids = Array.new(50) do
              TaskerEvents.publish("setting.stored", {}, namespace:, delivery_mode: :durable)
            end
          end.not_to raise_error
        end
        [ids, refused]
      end

      it "refuses durable events beyond a full channel with nil, and counts them" do
        start_unreachable(1)
        ids, refused = durable_burst
        # One event in the retried write, one in the channel; a few more at most if the
        # publisher took them while the burst began.
        expect(ids.count(nil)).to be >= 45
        expect(refused).to eq(ids.count(nil))
      end

      it "accepts the same burst when the channel has room for it" do
        start_unreachable(100)
        ids, refused = durable_burst
        expect(ids).to all(be_a(String))
        expect(refused).to eq(0)
      end
    end
  end

  describe "shutdown_drain_timeout_ms" do
    it "stops waiting for a stuck subscriber after it, and reports what was dropped" do
      gate = Queue.new
      entered = Queue.new
      parked_subscriber(gate, entered)
      TaskerEvents.start(logger:, shutdown_drain_timeout_ms: 300, dispatch_timeout_ms: 60_000)
      publish_fast
      expect_entered(entered)
      3.times { publish_fast }
      stuck = drain_threads

      report = nil
      took = elapsed { report = TaskerEvents.shutdown }
      # Far below the 5000 ms default: the setting, not the default, ended the wait.
      expect(took).to be < 3
      # Three still queued, and the one the stuck subscriber holds.
      expect(report).to include(drained: 0, dropped: 4)
      gate.close
      stuck.each { |thread| thread.join(5) }
      # The subscriber finishing late does not count its event a second time.
      counts = TaskerEvents.stats[:ruby_subscribers]
      expect(counts[:accepted]).to eq(counts[:delivered] + counts[:dropped].values.sum)
    ensure
      gate.close
      stuck&.each { |thread| thread.join(5) }
    end

    it "reports everything queued as drained, and nothing dropped, when nothing is stuck" do
      gate = Queue.new
      entered = Queue.new
      subscriber = parked_subscriber(gate, entered)
      TaskerEvents.start(shutdown_drain_timeout_ms: 5_000, dispatch_timeout_ms: 60_000)
      publish_fast
      expect_entered(entered)
      4.times { publish_fast }
      queued = TaskerEvents.stats.dig(:ruby_subscribers, :queued)
      expect(queued).to eq(5)

      # The woken drain thread needs the GVL, which this thread keeps until shutdown waits
      # without it, so all five are still queued when shutdown begins.
      gate.close
      expect(TaskerEvents.shutdown).to include(drained: queued, dropped: 0)
      expect(subscriber.received.size).to eq(5)
    ensure
      gate.close
    end
  end

  describe "log_dropped_events" do
    # The Rust core logs to standard error, not to the logger, so each example starts the
    # system in a separate process and reads what that process wrote there.
    def run_logged(settings, body)
      run_ruby(<<~RUBY, env: { "TASKER_EVENTS_LOG" => "warn" })
        require "tasker_events"
        TaskerEvents.start(#{settings})
        #{body}
      RUBY
    end

    def publish_without_database(flag)
      run_logged("log_dropped_events: #{flag}", <<~RUBY)
        id = TaskerEvents.publish("order.placed", {}, namespace: "logged", delivery_mode: :durable)
        p [id, TaskerEvents.stats.dig(:durable, :dropped, :no_database)]
      RUBY
    end

    # Nothing listens on port 1: the three events are still queued when shutdown gives up.
    def drop_at_shutdown(flag)
      settings = 'database_url: "postgresql://postgres@127.0.0.1:1/unreachable", ' \
                 "connect_timeout_ms: 3_000, shutdown_drain_timeout_ms: 200, " \
                 "log_dropped_events: #{flag}"
      run_logged(settings, <<~RUBY)
        3.times { TaskerEvents.publish("order.placed", {}, namespace: "logged") }
        p TaskerEvents.shutdown[:dropped]
      RUBY
    end

    it "when true, logs a dropped event at warn with its name and reason" do
      stdout, stderr, status = publish_without_database(true)
      expect(status).to be_success, stderr
      expect(stdout).to eq("[nil, 1]\n")
      expect(stderr).to match(/WARN.*domain event dropped/)
      expect(stderr).to include("event_name=order.placed", "reason=no_database")
    end

    it "when false, logs nothing for it but still counts it" do
      stdout, stderr, status = publish_without_database(false)
      expect(status).to be_success, stderr
      expect(stdout).to eq("[nil, 1]\n")
      expect(stderr).not_to include("dropped")
    end

    it "when true, logs events dropped at shutdown" do
      stdout, stderr, status = drop_at_shutdown(true)
      expect(status).to be_success, stderr
      expect(stdout).to eq("3\n")
      expect(stderr).to match(/WARN.*dropped/)
    end

    it "when false, logs nothing for events dropped at shutdown either" do
      stdout, stderr, status = drop_at_shutdown(false)
      expect(status).to be_success, stderr
      expect(stdout).to eq("3\n")
      expect(stderr).not_to include("dropped")
    end
  end

  describe "ffi_integration_enabled" do
    let(:template) do
      write_template(namespace, "charge" => [{ name: "setting.charged", delivery_mode: "fast",
                                               publisher: "SettingsSpecPublisher" }])
    end

    def dispatch_charge
      expect(TaskerEvents.dispatch_step_events(step_context(namespace, "charge"), success))
        .to be(true)
      expect(TaskerEvents.flush(timeout: 5)).to be(true)
    end

    it "when false, starts no drain thread and gives Ruby subscribers nothing" do
      subscriber = recording_subscriber("setting.*")
      # A drain thread of an earlier example may still be finishing a slow subscriber.
      earlier = drain_threads
      TaskerEvents.start(ffi_integration_enabled: false)
      expect(drain_threads - earlier).to be_empty

      before = TaskerEvents.stats
      id = publish_fast
      expect(TaskerEvents.flush(timeout: 5)).to be(true)
      after = TaskerEvents.stats
      # Fast events are still accepted and counted: Rust subscribers would receive them.
      expect(id).to match(/\A\h{8}-\h{4}-/)
      expect(after[:published][:fast] - before[:published][:fast]).to eq(1)
      expect(after[:ruby_subscribers][:accepted]).to eq(before[:ruby_subscribers][:accepted])
      expect(subscriber.received).to be_empty
    end

    it "when false, counts declared events that need a Ruby publisher as ffi_disabled" do
      TaskerEvents.start(logger:, templates: [template], ffi_integration_enabled: false,
                         log_dropped_events: false)
      disabled = stat_change(:declared_events, :ffi_disabled) { dispatch_charge }
      expect(disabled).to eq(1)
    end

    it "when true, runs a drain thread that serves Ruby publishers and subscribers" do
      subscriber = recording_subscriber("setting.*")
      earlier = drain_threads
      TaskerEvents.start(logger:, templates: [template], ffi_integration_enabled: true)
      expect((drain_threads - earlier).size).to eq(1)
      published = stat_change(:declared_events, :published) { dispatch_charge }
      expect(published).to eq(1)
      expect(subscriber.received.map { |event| event[:event_name] }).to eq(["setting.charged"])
    end
  end

  describe "deduplication_cache_size" do
    let(:template) do
      write_template(namespace, "charge" => [{ name: "setting.charged", delivery_mode: "fast" }])
    end

    # Dispatches the completions and returns how many events the subscriber received and how
    # many were skipped as duplicates.
    def dispatch_completions(*contexts)
      subscriber = recording_subscriber("setting.*")
      deduplicated = stat_change(:declared_events, :deduplicated) do
        contexts.each { |context| TaskerEvents.dispatch_step_events(context, success) }
        expect(TaskerEvents.flush(timeout: 5)).to be(true)
      end
      [subscriber.received.size, deduplicated]
    end

    def charge(step_uuid, attempt: 1)
      step_context(namespace, "charge", step_uuid:, attempt:)
    end

    let(:first) { SecureRandom.uuid }
    let(:second) { SecureRandom.uuid }

    it "publishes a completion reported twice once, and another attempt again" do
      TaskerEvents.start(templates: [template], deduplication_cache_size: 10_000)
      received = dispatch_completions(charge(first), charge(first), charge(first, attempt: 2))
      expect(received).to eq([2, 1])
    end

    it "with 0, publishes a completion every time it is reported" do
      TaskerEvents.start(templates: [template], deduplication_cache_size: 0)
      expect(dispatch_completions(charge(first), charge(first))).to eq([2, 0])
    end

    it "with 1, forgets a completion once a newer one was remembered" do
      TaskerEvents.start(templates: [template], deduplication_cache_size: 1)
      expect(dispatch_completions(charge(first), charge(second), charge(first))).to eq([3, 0])
    end

    it "with 2, still remembers the completion before the newest" do
      TaskerEvents.start(templates: [template], deduplication_cache_size: 2)
      expect(dispatch_completions(charge(first), charge(second), charge(first))).to eq([2, 1])
    end
  end

  describe "config directory" do
    let(:shipped) { File.expand_path("../../config/tasker", __dir__) }

    def logs_subscriber_errors?
      recording_subscriber("setting.*") { raise ArgumentError, "refused by the spec" }
      publish_fast
      expect(TaskerEvents.flush(timeout: 5)).to be(true)
      log.string.include?("refused by the spec")
    end

    it "is read by start for the environment named" do
      TaskerEvents.start(logger:, config: shipped, environment: "production")
      # production/worker.toml turns log_subscriber_errors off; base and the default have it on.
      expect(logs_subscriber_errors?).to be(false)
    end

    it "is overridden by keyword settings given to start" do
      TaskerEvents.start(logger:, config: shipped, environment: "production",
                         log_subscriber_errors: true)
      expect(logs_subscriber_errors?).to be(true)
    end

    it "stops start with a ConfigError naming the file and key when a value is refused" do
      dir = write_worker_config("", "test" => <<~TOML)
        [worker.mpsc_channels.in_process_events]
        broadcast_buffer_size = 0
      TOML
      file = File.join(dir, "environments", "test", "worker.toml")
      expect { TaskerEvents.start(config: dir, environment: "test") }
        .to raise_error(TaskerEvents::ConfigError,
                        "#{file}:2: worker.mpsc_channels.in_process_events." \
                        "broadcast_buffer_size = 0 is out of range (allowed 1..=1000000)")
      expect(TaskerEvents.started?).to be(false)
    end
  end
end
