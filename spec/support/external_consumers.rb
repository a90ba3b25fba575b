# frozen_string_literal: true

require "fileutils"
require "json"
require "open3"
require "rbconfig"

# Runs the example consumers of examples/consumers the way a user would: each in a process of
# its own, with DATABASE_URL in its environment and a namespace and flags on its command line.
#
# @example
#   run = ExternalConsumers.run(:python, "payments", "--json", database_url: url)
#   run.exitstatus # => 0
#   run.records    # => [{ "status" => "processed", "msg_id" => 1, "message" => {...}, ... }]
module ExternalConsumers
  ROOT = File.expand_path("../..", __dir__)
  SCRIPTS = {
    python: File.join(ROOT, "examples", "consumers", "python_consumer.py"),
    ruby: File.join(ROOT, "examples", "consumers", "ruby_consumer.rb")
  }.freeze

  # Raised when a consumer cannot be started or prints something unreadable; carries the
  # output.
  class Failure < StandardError; end

  # What one run of a consumer printed, and how it ended.
  Run = Struct.new(:stdout, :stderr, :exitstatus, keyword_init: true) do
    # @return [Array<Hash>] one record per message read, as --json prints them
    def records
      @records ||= stdout.lines.map { |line| JSON.parse(line) }
    rescue JSON::ParserError => e
      raise Failure, "a line on stdout is not JSON (#{e.message}):\n#{stdout}\n#{stderr}"
    end

    def statuses = records.map { |record| record["status"] }

    def event_ids = records.map { |record| record.dig("message", "event_id") }
  end

  # A venv in tmp/pyenv with PyPI's pgmq, built on first use and then reused. A marker file
  # records that pip finished, so a half-built venv is never trusted.
  module PythonVenv
    REQUIREMENT = "pgmq>=1.1,<1.2"
    DIR = File.join(ROOT, "tmp", "pyenv")
    PYTHON = File.join(DIR, "bin", "python")
    MARKER = File.join(DIR, ".tasker-events-ready")

    # @return [String] the venv's python, with pgmq importable
    def self.python
      build unless File.exist?(MARKER) && File.read(MARKER) == REQUIREMENT
      PYTHON
    end

    def self.build
      FileUtils.rm_rf(DIR)
      run!("could not create a Python venv (on Debian: apt-get install python3-venv)",
           ENV.fetch("PYTHON", "python3"), "-m", "venv", DIR)
      run!("could not install #{REQUIREMENT} from PyPI; the Python consumer needs it",
           PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--retries", "2", "--timeout", "30", REQUIREMENT)
      File.write(MARKER, REQUIREMENT)
    end

    def self.run!(failure, *command)
      output, status = Open3.capture2e(*command)
      raise Failure, "#{failure}\n$ #{command.join(" ")}\n#{output}" unless status.success?
    end
  end

  # @param language [Symbol] :python or :ruby
  # @return [Array<String>] the command that starts that consumer
  def self.command(language)
    case language
    when :python then [PythonVenv.python, SCRIPTS.fetch(:python)]
    when :ruby then [RbConfig.ruby, SCRIPTS.fetch(:ruby)]
    else raise ArgumentError, "no example consumer in #{language.inspect}"
    end
  end

  # Runs a consumer to its end.
  # @param language [Symbol] :python or :ruby
  # @param arguments [Array<String>] its command line: a namespace and flags
  # @param database_url [String] given as DATABASE_URL
  # @return [Run]
  def self.run(language, *arguments, database_url:)
    stdout, stderr, status = Open3.capture3({ "DATABASE_URL" => database_url },
                                            *command(language), *arguments)
    Run.new(stdout:, stderr:, exitstatus: status.exitstatus)
  end
end
