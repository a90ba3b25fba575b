# frozen_string_literal: true

module TaskerEvents
  class CLI
    # `tasker-events demo`: the README's payments scenario, so that an installed gem can show
    # every delivery mode working against a real database in one command.
    class Demo < Command
      command "demo",
              summary: "run the payments demo scenario against a database",
              description: <<~TEXT
                Runs the scenario of bin/demo (TaskerEvents::Demo): installs PGMQ if it is
                missing, publishes four payment events in the three delivery modes, prints
                what the Ruby subscribers receive and what reached payments_domain_events
                (read without consuming), then a summary of the counters. Its messages stay
                in payments_domain_events, so use a database whose consumers may see them.
              TEXT

      private

      def define_options(parser)
        database_option(parser)
      end

      def call(operands)
        no_operands!(operands)
        url = database_url!
        progress "connecting to #{shown_url}"
        TaskerEvents::Demo.new(database_url: url, out:, progress: err).run
        EXIT_OK
      end
    end
  end
end
