# frozen_string_literal: true

require "tasker_events"
require "tasker_events/queue_inspector"
require "tasker_events/demo"
require_relative "cli/command"
require_relative "cli/install"
require_relative "cli/queues"
require_relative "cli/tail"
require_relative "cli/validate"
require_relative "cli/demo"

module TaskerEvents
  # The `tasker-events` command for operators: install PGMQ, list the durable queues, tail
  # one without consuming it, validate task templates, run the demo. Each command is a
  # {CLI::Command}; this class picks one, and turns the errors it raises into a message on
  # stderr and a documented exit status.
  #
  # @example
  #   exit TaskerEvents::CLI.new.run(ARGV)
  class CLI
    EXIT_OK = 0
    EXIT_FAILURE = 1
    EXIT_USAGE = 2
    EXIT_DATABASE = 3
    EXIT_NOT_FOUND = 4
    # What shells report for a process ended by SIGINT, kept for a command that was told to stop.
    EXIT_INTERRUPTED = 130

    EXIT_STATUS_HELP = <<~TEXT
      Exit status:
          0  success (tail --follow also when stopped by SIGINT or SIGTERM)
          1  validate found an invalid template, or the command failed
          2  usage error: unknown command or option, missing or invalid argument
          3  cannot connect: malformed database URL, unreachable server, refused login
          4  not found: the queue does not exist, or PGMQ is not installed
        130  interrupted by SIGINT before the command finished
    TEXT

    # Checked in order, so Error, which every other one is, comes last.
    EXIT_STATUSES = [
      [UsageError, EXIT_USAGE], [ValidationError, EXIT_USAGE],
      [ConfigError, EXIT_DATABASE], [DatabaseUnreachableError, EXIT_DATABASE],
      [QueueNotFoundError, EXIT_NOT_FOUND], [Error, EXIT_FAILURE]
    ].freeze

    # Shorter passwords are not masked on their own, lest every "a" of a message became "***";
    # the URL that contains them still is.
    MIN_MASKED_PASSWORD = 4

    # @return [Hash{String => Class}] each command by the name typed on the command line
    COMMANDS = [Install, Queues, Tail, Validate, Demo]
               .to_h { |command| [command.command_name, command] }.freeze

    # @param out [IO] results
    # @param err [IO] progress and errors
    # @param env [Hash{String => String}] the environment (DATABASE_URL)
    def initialize(out: $stdout, err: $stderr, env: ENV)
      @out = out
      @err = err
      @env = env
      @command = nil
    end

    # @param argv [Array<String>]
    # @return [Integer] the exit status
    def run(argv)
      args = argv.dup
      name = args.shift
      case name
      when nil then usage_error("no command given")
      when "-h", "--help", "help" then help(args.first)
      when "-v", "--version" then version
      else run_command(name, args)
      end
    end

    private

    def run_command(name, args)
      @command = command_class(name).new(out: @out, err: @err, env: @env)
      @command.run(args)
    rescue Errno::EPIPE
      # The reader went away (`tasker-events tail x | head`); nothing is left to tell it.
      EXIT_OK
    rescue Interrupt
      @err.puts "tasker-events: interrupted"
      EXIT_INTERRUPTED
    rescue *EXIT_STATUSES.map(&:first) => e
      fail_with(e)
    end

    def command_class(name)
      COMMANDS.fetch(name) do
        raise UsageError, "unknown command #{name.inspect}; commands: #{COMMANDS.keys.join(", ")}"
      end
    end

    def fail_with(error)
      status = EXIT_STATUSES.find { |klass, _| error.is_a?(klass) }.last
      @err.puts "tasker-events: #{scrub(error.message)}"
      @err.puts hint(error, status) if hint(error, status)
      status
    end

    def hint(error, status)
      return "Run 'tasker-events install' to install it." if error.is_a?(PgmqNotInstalledError)
      return unless status == EXIT_USAGE

      name = @command&.class&.command_name
      "Run 'tasker-events #{name ? "#{name} " : ""}--help' for usage."
    end

    def usage_error(message)
      fail_with(UsageError.new(message))
    end

    def help(name)
      return usage_error("unknown command #{name.inspect}") if name && !COMMANDS.key?(name)

      @out.puts(name ? COMMANDS.fetch(name).new(out: @out, err: @err, env: @env).help : overview)
      EXIT_OK
    end

    def version
      @out.puts "tasker-events #{VERSION}"
      EXIT_OK
    end

    def overview
      width = COMMANDS.keys.map(&:size).max
      commands = COMMANDS.map { |name, klass| "  #{name.ljust(width)}  #{klass.summary}" }
      <<~TEXT
        Usage: tasker-events COMMAND [options]

        Operator commands for tasker_events' durable queues, {namespace}_domain_events on PGMQ.

        Commands:
        #{commands.join("\n")}

        Options:
          -h, --help     Show this help; `tasker-events COMMAND --help` for a command's
          -v, --version  Print the version

        Environment:
          DATABASE_URL   default of --database-url

        #{EXIT_STATUS_HELP}
        Passwords of database URLs are masked in everything tasker-events prints.
      TEXT
    end

    # Messages from the core never hold a password; this guards the rest, such as a server
    # echoing part of a connection string back.
    def scrub(message)
      urls = [@command&.database_url, @env["DATABASE_URL"]].compact.reject(&:empty?).uniq
      urls.reduce(message) do |text, url|
        text = text.gsub(url, Native.redact_url(url))
        password = url[%r{\A[^:/?#]+://[^/?#@]*?:([^@/?#]*)@}, 1]
        next text if password.nil? || password.size < MIN_MASKED_PASSWORD

        text.gsub(password, "***")
      end
    end
  end
end
