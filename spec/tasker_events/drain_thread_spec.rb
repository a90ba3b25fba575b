# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::DrainThread do
  let(:namespace) { unique_namespace }

  # This system's drain thread; one of an earlier example may still be finishing.
  def drain_thread
    TaskerEvents.event_system.drain_thread.thread
  end

  before { TaskerEvents.start }

  it "lets other Ruby threads run while it waits for events" do
    counter = 0
    worker = Thread.new { 200_000.times { counter += 1 } }
    expect(worker.join(10)).not_to be_nil
    expect(counter).to eq(200_000)
    expect(drain_thread).to be_alive
  end

  it "wakes for an event without polling" do
    subscriber = recording_subscriber("a.b")
    TaskerEvents.publish("a.b", {}, namespace:, delivery_mode: :fast)
    deadline = Time.now + 5
    sleep 0.001 while subscriber.received.empty? && Time.now < deadline
    expect(subscriber.received.size).to eq(1)
  end

  it "ends its wait at once when killed" do
    thread = drain_thread
    thread.kill
    expect(thread.join(2)).not_to be_nil
  end

  it "is replaced when killed, and the replacement delivers what comes next" do
    TaskerEvents.logger = Logger.new(log = StringIO.new)
    subscriber = recording_subscriber("a.b")
    killed = drain_thread
    killed.kill
    expect(killed.join(2)).not_to be_nil

    TaskerEvents.publish("a.b", {}, namespace:, delivery_mode: :fast)
    expect(TaskerEvents.flush(timeout: 5)).to be(true)
    expect(subscriber.received.size).to eq(1)
    expect(drain_thread).to be_alive.and(satisfy { |t| !t.equal?(killed) })
    expect(log.string).to include("the drain thread was killed; starting another")
  ensure
    TaskerEvents.logger = nil
  end

  it "survives an exception raised into it and keeps delivering" do
    TaskerEvents.logger = Logger.new(log = StringIO.new)
    subscriber = recording_subscriber("a.b")
    # One delivery first, so the thread is surely inside its loop when the exception lands.
    TaskerEvents.publish("a.b", {}, namespace:, delivery_mode: :fast)
    TaskerEvents.flush(timeout: 5)
    drain_thread.raise(RuntimeError, "stray")
    TaskerEvents.publish("a.b", {}, namespace:, delivery_mode: :fast)
    expect(TaskerEvents.flush(timeout: 5)).to be(true)
    expect(subscriber.received.size).to eq(2)
    expect(log.string).to include("drain thread caught RuntimeError: stray")
  ensure
    TaskerEvents.logger = nil
  end

  it "accounts for events it took when killed mid-batch" do
    started = Queue.new
    recording_subscriber("a.b") do
      started << true
      sleep
    end
    3.times { TaskerEvents.publish("a.b", {}, namespace:, delivery_mode: :fast) }
    started.pop
    lost = stat_change(:ruby_subscribers, :dropped, :drain_thread_stopped) do
      thread = drain_thread
      thread.kill
      thread.join(2)
    end
    expect(lost).to be_between(1, 3)
  end

  describe "when the process exits" do
    # A process of its own: the exit must be real, and must not end this suite.
    def run_worker(body)
      run_ruby(<<~RUBY)
        require "tasker_events"
        # Prints each event it is given, slowly enough that some are queued at exit.
        class Worker < TaskerEvents::BaseSubscriber
          subscribes_to "work.*"
          def handle(event)
            sleep 0.01
            puts "handled \#{event[:payload][:seq]}"
            #{body}
          end
        end
        TaskerEvents::SubscriberRegistry.instance.register(Worker).start_all!
        TaskerEvents.start(logger: Logger.new($stderr, level: Logger::WARN))
        20.times { |seq| TaskerEvents.publish("work.done", { seq: }, namespace: "w",
                                                                     delivery_mode: :fast) }
      RUBY
    end

    it "delivers what is queued before the process ends" do
      stdout, stderr, status = run_worker("")
      expect(status.exitstatus).to eq(0), stderr
      expect(stdout.lines.map(&:chomp)).to eq((0...20).map { |seq| "handled #{seq}" })
    end

    it "exits with the status a subscriber gave exit, after delivering what is queued" do
      stdout, stderr, status = run_worker("exit 3 if event[:payload][:seq] == 5")
      expect(status.exitstatus).to eq(3)
      expect(stdout.lines.map(&:chomp)).to eq((0...20).map { |seq| "handled #{seq}" })
      expect(stderr).to include("subscriber or publisher code called exit(3)")
    end
  end
end
