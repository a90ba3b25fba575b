# frozen_string_literal: true

module TaskerEvents
  class CLI
    # `tasker-events install`: PGMQ's SQL, as the durable publisher's `install_pgmq: true`
    # would install it, for databases where workers should not run DDL themselves.
    class Install < Command
      command "install",
              summary: "install PGMQ's SQL into the database if it is missing",
              description: <<~TEXT
                Installs PGMQ as plain SQL (never CREATE EXTENSION) when it is missing, or
                updates it when it is older than the version bundled with tasker_events.
                Safe to run again. Progress goes to stderr.
              TEXT

      private

      def define_options(parser)
        database_option(parser)
      end

      def call(operands)
        no_operands!(operands)
        url = database_url!
        progress "connecting to #{shown_url}"
        installed = QueueInspector.open(url) { |inspector| pgmq_installed?(inspector) }
        if installed
          progress "PGMQ is installed; updating it if it is older than the bundled SQL"
        else
          progress "PGMQ is missing; installing it"
        end
        TaskerEvents.install_pgmq(url)
        out.puts "PGMQ is installed in #{shown_url}"
        EXIT_OK
      end

      def pgmq_installed?(inspector)
        inspector.queues
        true
      rescue QueueNotFoundError
        false
      end
    end
  end
end
