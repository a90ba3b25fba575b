# frozen_string_literal: true

require "optparse"

module TaskerEvents
  class CLI
    # What every `tasker-events` command shares: option parsing with `--help`, the database
    # URL (`--database-url`, else DATABASE_URL), progress lines on stderr. A subclass names
    # itself with {.command}, adds its options in #define_options and does its work in #call,
    # returning the exit status.
    class Command
      class << self
        # @return [String] the name typed on the command line
        attr_reader :command_name

        # @return [String] one line for the list of commands
        attr_reader :summary

        # @return [String] the arguments shown after the name in the usage line
        attr_reader :arguments

        # @return [String] the paragraph that explains the command in its --help
        attr_reader :description

        # Declares how the command appears on the command line and in the help.
        def command(name, summary:, arguments: "[options]", description: summary)
          @command_name = name
          @summary = summary
          @arguments = arguments
          @description = description
        end
      end

      # @param out [IO] results
      # @param err [IO] progress and errors
      # @param env [Hash{String => String}] the environment (DATABASE_URL)
      def initialize(out:, err:, env:)
        @out = out
        @err = err
        @env = env
        @help = false
        @database_url = nil
      end

      # Parses `args` and runs the command.
      # @param args [Array<String>]
      # @return [Integer] the exit status
      # @raise [UsageError] for an unknown option or a wrong argument
      def run(args)
        operands = parser.parse(args)
        if @help
          @out.puts help
          return EXIT_OK
        end
        call(operands)
      rescue OptionParser::ParseError => e
        raise UsageError, e.message
      end

      # @return [String] the command's --help text
      def help
        parser.help
      end

      # @return [String, nil] the URL this command connects to, if one was given
      def database_url
        @database_url || @env["DATABASE_URL"].then { |url| url.nil? || url.empty? ? nil : url }
      end

      private

      attr_reader :out, :err

      def call(_operands)
        raise NotImplementedError, "#{self.class} must implement #call"
      end

      def define_options(_parser); end

      def parser
        @parser ||= OptionParser.new do |parser|
          parser.program_name = "tasker-events"
          parser.version = VERSION
          parser.banner = "Usage: tasker-events #{self.class.command_name} #{self.class.arguments}"
          paragraph(parser, self.class.description)
          parser.separator "Options:"
          define_options(parser)
          parser.on("-h", "--help", "Show this help") { @help = true }
          paragraph(parser, EXIT_STATUS_HELP)
        end
      end

      def paragraph(parser, text)
        parser.separator ""
        text.each_line { |line| parser.separator line.chomp }
      end

      def database_option(parser)
        parser.on("--database-url URL", "PostgreSQL URL (default: $DATABASE_URL)") do |url|
          @database_url = url
        end
      end

      def database_url!
        database_url or
          raise UsageError, "no database URL: pass --database-url URL or set DATABASE_URL"
      end

      # The URL as it may be printed.
      def shown_url
        Native.redact_url(database_url!)
      end

      def progress(message)
        err.puts "tasker-events: #{message}"
      end

      def no_operands!(operands)
        return if operands.empty?

        raise UsageError, "unexpected argument #{operands.first.inspect}"
      end
    end
  end
end
