# frozen_string_literal: true

require "securerandom"
require "tasker_events"
require "tasker_events/queue_inspector"
require_relative "demo/payment_notifier"
require_relative "demo/event_counter"

module TaskerEvents
  # A payments worker in miniature, the scenario that `bin/demo` (through examples/demo.rb)
  # and `tasker-events demo` run: four payment events in each delivery mode, Ruby
  # subscribers printing the in-process ones as they arrive, the durable ones read back from
  # PGMQ without consuming them, and a summary of the counters.
  #
  # It writes to the `payments_domain_events` queue of the database it is given, and leaves
  # its messages there for consumers, so point it at a database whose consumers may see
  # them.
  #
  # @example
  #   TaskerEvents::Demo.new(database_url: ENV.fetch("DATABASE_URL")).run
  class Demo
    NAMESPACE = "payments"
    FLUSH_TIMEOUT = 10
    PATHS = %i[durable ruby_subscribers rust_subscribers].freeze

    # @param database_url [String]
    # @param out [IO] the scenario's output
    # @param progress [IO] what the demo is doing, for long steps
    def initialize(database_url:, out: $stdout, progress: $stderr)
      @database_url = database_url
      @out = out
      @progress = progress
      @task_uuid = SecureRandom.uuid
    end

    # Runs the scenario and stops the event system again.
    # @return [Hash] the counters of {TaskerEvents.stats} that the summary shows, counting only
    #   this run: `published` per delivery mode, and `accepted`, `delivered` and `dropped` per
    #   reason for each path
    # @raise [Error] when the event system is already running in this process, or the events
    #   were not delivered within FLUSH_TIMEOUT seconds
    # @raise [DatabaseError] when PGMQ cannot be installed
    def run
      raise Error, "the demo needs its own event system; this process already started one" \
        if TaskerEvents.started?

      @before = TaskerEvents.stats
      QueueInspector.open(@database_url) do |inspector|
        start
        first_msg_id = last_msg_id(inspector)
        publish_events
        read_back(inspector, first_msg_id)
      end
      summary
    ensure
      stop
    end

    private

    def start
      @progress.puts "tasker-events: installing PGMQ if it is missing"
      TaskerEvents.install_pgmq(@database_url)
      TaskerEvents.start(database_url: @database_url)
      @notifier = PaymentNotifier.new(@out)
      @counter = EventCounter.new
      SubscriberRegistry.instance.register_instance(@notifier).register_instance(@counter)
                        .start_all!
    end

    def stop
      TaskerEvents.shutdown
      [@notifier, @counter].compact.each(&:stop!)
    end

    # Where this run's messages start, so messages of earlier runs are not shown again.
    def last_msg_id(inspector)
      inspector.last_msg_id(NAMESPACE)
    rescue QueueNotFoundError
      0
    end

    def publish_events
      step = { namespace: NAMESPACE, task_uuid: @task_uuid, step_name: "process_payment" }
      @out.puts "== publishing (task #{@task_uuid})"
      TaskerEvents.publish("payment.authorized", { transaction_id: "TXN-1", amount: 99.99 },
                           delivery_mode: :fast, **step)
      TaskerEvents.publish("payment.processed",
                           { transaction_id: "TXN-1", amount: 99.99, currency: "USD" },
                           delivery_mode: :broadcast, **step)
      TaskerEvents.publish("payment.receipt_sent",
                           { transaction_id: "TXN-1", email: "a@example.com" },
                           delivery_mode: :durable, **step)
      TaskerEvents.publish("payment.refunded", { transaction_id: "TXN-0", amount: 12.5 },
                           delivery_mode: :broadcast, metadata: { reason: "duplicate" }, **step)
      return if TaskerEvents.flush(timeout: FLUSH_TIMEOUT)

      raise Error, "events were not delivered within #{FLUSH_TIMEOUT} s"
    end

    # Reads the queue table as `tasker-events tail` does: consumers still get every message.
    def read_back(inspector, first_msg_id)
      @out.puts "\n== #{NAMESPACE}_domain_events, read without consuming " \
                "(tasker-events tail #{NAMESPACE})"
      rows = inspector.peek(NAMESPACE, after: first_msg_id, limit: 100)
      rows.select { |row| row.dig(:message, :metadata, :task_uuid) == @task_uuid }.each do |row|
        event = row[:message]
        @out.puts format("  [pgmq msg %<msg_id>-3s] %<name>-20s %<mode>-9s read_ct=%<reads>d " \
                         "event_id=%<id>s",
                         msg_id: row[:msg_id], name: event[:event_name],
                         mode: event[:delivery_mode], reads: row[:read_ct], id: event[:event_id])
      end
    end

    def summary
      TaskerEvents.shutdown
      stats = counted_since(@before, TaskerEvents.stats)
      @out.puts "\n== summary"
      @out.puts format("  published        durable=%<durable>d fast=%<fast>d " \
                       "broadcast=%<broadcast>d", stats[:published])
      PATHS.each { |path| path_line(path, stats[path]) }
      @out.puts "  in-process events counted by EventCounter: #{@counter.count}"
      stats
    end

    # The counters live for the whole process; the summary is about this run only.
    def counted_since(before, after)
      change = ->(*path) { after.dig(*path) - before.dig(*path) }
      paths = PATHS.to_h do |path|
        reasons = after[path][:dropped].keys
        dropped = reasons.to_h { |reason| [reason, change[path, :dropped, reason]] }
        [path, { accepted: change[path, :accepted], delivered: change[path, :delivered], dropped: }]
      end
      { published: DELIVERY_MODES.to_h { |mode| [mode, change[:published, mode]] }, **paths }
    end

    def path_line(path, counts)
      dropped = counts[:dropped].select { |_, n| n.positive? }
      @out.puts format("  %<path>-16s accepted=%<accepted>d delivered=%<delivered>d " \
                       "dropped=%<dropped>s",
                       path:, accepted: counts[:accepted], delivered: counts[:delivered],
                       dropped: dropped.empty? ? "0" : dropped)
    end
  end
end
