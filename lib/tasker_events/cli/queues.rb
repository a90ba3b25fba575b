# frozen_string_literal: true

require "json"

module TaskerEvents
  class CLI
    # `tasker-events queues`: every durable queue with what PGMQ knows about it, so an operator
    # sees at a glance which namespaces have a backlog and how old it is.
    class Queues < Command
      command "queues",
              summary: "list the *_domain_events queues with PGMQ's metrics",
              description: <<~TEXT
                Lists every *_domain_events queue with PGMQ's metrics (pgmq.metrics): messages
                in the queue, age of the oldest and the newest, and messages ever sent. Reads
                nothing from the queues themselves.
              TEXT

      COLUMNS = [
        ["QUEUE", :queue_name], ["LENGTH", :queue_length], ["OLDEST", :oldest_msg_age_sec],
        ["NEWEST", :newest_msg_age_sec], ["TOTAL SENT", :total_messages]
      ].freeze

      private

      def define_options(parser)
        database_option(parser)
        parser.on("--json", "Print a JSON array (ages in seconds, null when empty)") do
          @json = true
        end
      end

      def call(operands)
        no_operands!(operands)
        queues = QueueInspector.open(database_url!, &:queues)
        if @json
          out.puts JSON.pretty_generate(queues)
        elsif queues.empty?
          out.puts "no *_domain_events queues in #{shown_url}"
        else
          print_table(queues)
        end
        EXIT_OK
      end

      def print_table(queues)
        rows = [COLUMNS.map(&:first)] + queues.map { |queue| cells(queue) }
        widths = COLUMNS.each_index.map { |i| rows.map { |row| row[i].size }.max }
        rows.each { |row| out.puts aligned(row, widths) }
      end

      def cells(queue)
        COLUMNS.map { |_, key| cell(key, queue[key]) }
      end

      # The queue name flush left, the numbers flush right.
      def aligned(row, widths)
        first, *numbers = row.zip(widths)
        [first[0].ljust(first[1]), *numbers.map { |text, width| text.rjust(width) }].join("  ")
      end

      def cell(key, value)
        return "-" if value.nil?

        key.end_with?("_sec") ? age(value) : value.to_s
      end

      # 42s, 3m05s, 2h07m, 4d03h: precise enough to tell a fresh backlog from a stale one.
      def age(seconds)
        minutes, secs = seconds.divmod(60)
        hours, mins = minutes.divmod(60)
        days, hrs = hours.divmod(24)
        return format("%<d>dd%<h>02dh", d: days, h: hrs) if days.positive?
        return format("%<h>dh%<m>02dm", h: hours, m: mins) if hours.positive?
        return format("%<m>dm%<s>02ds", m: minutes, s: secs) if minutes.positive?

        "#{secs}s"
      end
    end
  end
end
