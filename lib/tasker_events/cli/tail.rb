# frozen_string_literal: true

require "json"

module TaskerEvents
  class CLI
    # `tasker-events tail`: what is waiting in one namespace's queue, read from the queue table
    # with a plain SELECT, so consumers lose nothing and read counts do not move.
    class Tail < Command
      command "tail",
              summary: "show a queue's events without consuming them",
              arguments: "NAMESPACE [options]",
              description: <<~TEXT
                Shows the newest events of the queue NAMESPACE_domain_events, oldest first, by
                reading its table (pgmq.q_NAMESPACE_domain_events) with a plain SELECT: nothing
                is consumed, read counts and visibility timeouts do not change. With --follow
                it then polls for events with a greater msg_id until SIGINT or SIGTERM (exit
                status 0). Messages consumers delete before a poll are not shown.
                Human lines: msg_id, enqueued_at, event_name, delivery_mode, correlation_id,
                event_id.
              TEXT

      DEFAULT_LIMIT = 10
      DEFAULT_INTERVAL = 1.0
      # Most rows one poll of --follow fetches; a longer backlog takes several polls.
      FOLLOW_BATCH = 500
      STOP_SIGNALS = [Signal.list.fetch("INT"), Signal.list.fetch("TERM")].freeze

      def initialize(...)
        super
        @limit = DEFAULT_LIMIT
        @interval = DEFAULT_INTERVAL
        @follow = false
        @json = false
        @payload = false
      end

      private

      def define_options(parser)
        position_options(parser)
        parser.on("--json", "Print each message as one JSON object per line") { @json = true }
        parser.on("--payload", "Add the payload to each human line") { @payload = true }
        database_option(parser)
      end

      def position_options(parser)
        parser.on("-n", "--limit N", Integer,
                  "Show the last N events first (default #{DEFAULT_LIMIT})") do |limit|
          raise UsageError, "--limit must be 0 or more, got #{limit}" if limit.negative?

          @limit = limit
        end
        parser.on("-f", "--follow", "Keep polling for new events until SIGINT/SIGTERM") do
          @follow = true
        end
        parser.on("--interval SECONDS", Float,
                  "Seconds between polls with --follow (default #{DEFAULT_INTERVAL})") do |value|
          raise UsageError, "--interval must be more than 0, got #{value}" unless value.positive?

          @interval = value
        end
      end

      def call(operands)
        namespace = namespace!(operands)
        QueueInspector.open(database_url!) do |inspector|
          rows = inspector.peek(namespace, limit: @limit)
          print_rows(rows)
          follow(inspector, namespace, rows.last&.fetch(:msg_id)) if @follow
        end
        EXIT_OK
      rescue SignalException => e
        raise unless @follow && STOP_SIGNALS.include?(e.signo)

        EXIT_OK
      end

      def namespace!(operands)
        raise UsageError, "tail needs a NAMESPACE" if operands.empty?
        raise UsageError, "unexpected argument #{operands[1].inspect}" if operands.size > 1

        operands.first
      end

      def follow(inspector, namespace, last_msg_id)
        last_msg_id ||= inspector.last_msg_id(namespace)
        progress "waiting for new events in #{namespace}_domain_events " \
                 "(polling every #{@interval} s; Ctrl-C to stop)"
        loop do
          rows = inspector.peek(namespace, after: last_msg_id, limit: FOLLOW_BATCH)
          print_rows(rows)
          last_msg_id = rows.last[:msg_id] unless rows.empty?
          sleep(@interval) if rows.size < FOLLOW_BATCH
        end
      end

      def print_rows(rows)
        rows.each { |row| out.puts(@json ? JSON.generate(row) : line(row)) }
        out.flush
      end

      # Any JSON may sit in a queue; what is not one of our events shows as "-".
      def line(row)
        event = hash_or_empty(row[:message])
        text = format(
          "%<msg_id>-8d %<at>s  %<name>-30s %<mode>-9s correlation_id=%<correlation>s " \
          "event_id=%<id>s",
          msg_id: row[:msg_id], at: row[:enqueued_at], **event_fields(event)
        )
        @payload ? "#{text} payload=#{JSON.generate(event[:payload])}" : text
      end

      def event_fields(event)
        fields = { name: event[:event_name], mode: event[:delivery_mode],
                   correlation: hash_or_empty(event[:metadata])[:correlation_id],
                   id: event[:event_id] }
        fields.transform_values { |value| value.nil? ? "-" : value }
      end

      def hash_or_empty(value)
        value.is_a?(Hash) ? value : {}
      end
    end
  end
end
