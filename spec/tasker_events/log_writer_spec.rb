# frozen_string_literal: true

require "spec_helper"
require "json"

RSpec.describe TaskerEvents::LogWriter do
  let(:io) { StringIO.new }
  let(:namespace) { unique_namespace }

  after { TaskerEvents.logger = nil }

  # The core's lines arrive through the drain thread, a moment after they were logged.
  def logged(text)
    deadline = Time.now + 5
    sleep 0.01 until io.string.include?(text) || Time.now > deadline
    io.string
  end

  describe "the core's log lines" do
    it "reach the Ruby logger with their structured fields" do
      TaskerEvents.start(logger: Logger.new(io, level: Logger::WARN))
      # Broadcast: the fast side takes it (so there is an id), the durable side drops it.
      id = TaskerEvents.publish("order.placed", { secret: "s3" }, namespace:,
                                                                  delivery_mode: :broadcast)
      line = logged("domain event dropped").lines.grep(/domain event dropped/).first

      expect(id).to be_a(String)
      expect(line).to include("WARN", "tasker_events: domain event dropped", "event_id=#{id} ",
                              "event_name=order.placed", "namespace=#{namespace}",
                              "reason=no_database", "path=durable")
      expect(line).to match(/correlation_id=\h{8}-/)
    end

    it "carry the fields of the spans they were logged in" do
      TaskerEvents.start(logger: Logger.new(io, level: Logger::WARN), connect_timeout_ms: 200,
                         database_url: "postgres://app:hunter2@127.0.0.1:1/app")
      TaskerEvents.publish("order.placed", {}, namespace:)
      line = logged("durable write failed").lines.grep(/durable write failed/).first

      # From the durable write's span: the queue it was writing to and the batch's size.
      expect(line).to include("queue_name=#{namespace}_domain_events", "event_count=1",
                              "failed_writes=1", "retry_in_ms=")
      expect(line.scan("queue_name=").size).to eq(1)
      expect(line).not_to include("hunter2")
    end

    it "are written by the drain thread, never by a Rust thread" do
      threads = []
      logger = Logger.new(io, level: Logger::WARN)
      logger.formatter = proc do |_severity, _time, _progname, message|
        threads << Thread.current.name
        "#{message}\n"
      end
      TaskerEvents.start(logger:)
      TaskerEvents.publish("order.placed", {}, namespace:)
      logged("domain event dropped")
      expect(threads).to all(eq("tasker_events-drain"))
      expect(threads).not_to be_empty
    end

    it "follow the logger's level: payloads appear only at debug" do
      TaskerEvents.start(logger: Logger.new(io, level: Logger::WARN))
      TaskerEvents.publish("order.placed", { card: "4242" }, namespace:, delivery_mode: :fast)
      TaskerEvents.publish("order.placed", {}, namespace:)
      logged("domain event dropped")
      expect(io.string).not_to include("4242", "DEBUG")

      TaskerEvents.logger = Logger.new(io, level: Logger::DEBUG)
      id = TaskerEvents.publish("order.placed", { card: "4242" }, namespace:,
                                                                  delivery_mode: :fast)
      line = logged("4242").lines.grep(/routing domain event/).last
      # The route span's fields: the event's identifiers and its mode.
      expect(line).to include("event_id=#{id}", "event_name=order.placed",
                              "namespace=#{namespace}", "delivery_mode=fast")
    end

    it "can be JSON, one object per line" do
      TaskerEvents.start(logger: Logger.new(io, level: Logger::WARN), log_format: :json)
      logger = TaskerEvents.logger
      logger.formatter = proc { |_severity, _time, _progname, message| "#{message}\n" }
      id = TaskerEvents.publish("order.placed", {}, namespace:, delivery_mode: :broadcast)
      line = logged("domain event dropped").lines.find { |l| l.include?("dropped") }
      expect(id).to be_a(String)
      expect(JSON.parse(line)).to include("message" => "domain event dropped", "event_id" => id,
                                          "namespace" => namespace, "reason" => "no_database")
    end

    it "never show a database password" do
      TaskerEvents.start(logger: Logger.new(io, level: Logger::DEBUG), connect_timeout_ms: 300,
                         database_url: "postgres://app:hunter2@127.0.0.1:1/app")
      TaskerEvents.publish("order.placed", {}, namespace:)
      logged("durable write failed")
      expect(io.string).to include("durable write failed")
      expect(io.string).not_to include("hunter2")
    end
  end

  describe "after shutdown" do
    # Standard error has its own level: a logger left at debug must not flood it once the
    # drain thread that served the logger is gone.
    it "go to standard error at TASKER_EVENTS_LOG's level, not the old logger's" do
      script = <<~RUBY
        require "tasker_events"
        require "stringio"
        TaskerEvents.start(logger: Logger.new(StringIO.new, level: Logger::DEBUG))
        TaskerEvents.shutdown
        TaskerEvents.install_pgmq(#{PrivatePostgres.url.inspect})
        puts "installed"
      RUBY
      quiet_out, quiet_err, = run_ruby(script, env: { "TASKER_EVENTS_LOG" => "warn" })
      _, verbose_err, = run_ruby(script, env: { "TASKER_EVENTS_LOG" => "debug" })

      expect(quiet_out).to eq("installed\n")
      expect(quiet_err).not_to include("DEBUG")
      expect(verbose_err).to include("DEBUG")
    end
  end

  describe "#render" do
    it "quotes values with spaces, quotes or equals signs" do
      text = described_class.new.render("m", a: "x y", b: "plain", c: "k=v", d: "")
      expect(text).to eq('tasker_events: m a="x y" b=plain c="k=v" d=""')
    end

    it "refuses an unknown format" do
      expect { described_class.new(:xml) }.to raise_error(TaskerEvents::ConfigError, /:xml/)
    end
  end
end
