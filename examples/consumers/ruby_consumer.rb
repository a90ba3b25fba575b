#!/usr/bin/env ruby
# frozen_string_literal: true

# Consume tasker_events' durable domain events with the pg gem and PGMQ's SQL functions.
#
# A starting point for a consumer of your own. It reads the queue NAMESPACE_domain_events in
# batches, each message hidden from other readers for --vt seconds; checks that each message is
# a domain event; handles each event once per run (a message seen again with an event_id
# already handled is a duplicate, acknowledged without handling it again); and acknowledges a
# batch once all of it was handled, by deleting it or, with --archive, by moving it to the
# queue's archive. A message that is not a domain event is archived, never deleted, so it can
# be inspected.
#
# It stops when no message is visible (after waiting up to --wait seconds for one), after
# --max-messages messages, or after --timeout seconds.
#
#   apt-get install ruby-pg      # or: gem install pg
#   DATABASE_URL=postgresql://postgres@127.0.0.1/app ruby ruby_consumer.rb payments
#
# One line per message on stdout ("processed", "duplicate" or "rejected" and the event's
# identifiers; a JSON object with --json), and a summary on stderr.

require "json"
require "optparse"
require "pg"
require "set"

module DomainEventConsumer
  EXIT_OK = 0
  EXIT_REJECTED = 1
  EXIT_USAGE = 2
  EXIT_DATABASE = 3
  EXIT_CRASHED = 4

  NAMESPACE = /\A[a-z0-9_]{1,33}\z/
  CONNECT_TIMEOUT = 10
  POLL_INTERVAL_MS = 100

  # Raised by --crash-after to stop the way a killed consumer would: nothing acknowledged.
  class Crash < StandardError; end

  # The shape of an event as README's "The event" documents it. Keys beyond these are ignored,
  # so a newer gem that adds one does not break the consumer.
  module Envelope
    UUID = /\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\z/
    MODES = %w[durable broadcast].freeze
    ANY = ->(_value) { true }
    KEYS = {
      "event_id" => ["a UUID", ->(value) { value.is_a?(String) && UUID.match?(value) }],
      "event_name" => ["a dotted name", ->(value) { value.is_a?(String) && value.include?(".") }],
      "event_version" => ["a non-empty string", ->(value) { value.is_a?(String) && !value.empty? }],
      "delivery_mode" => ['"durable" or "broadcast"', ->(value) { MODES.include?(value) }],
      "payload" => ["any JSON value", ANY],
      "metadata" => [
        "an object with a namespace and a correlation_id",
        lambda do |value|
          value.is_a?(Hash) && value["namespace"].is_a?(String) &&
            value["correlation_id"].is_a?(String)
        end
      ],
      "execution_result" => ["any JSON value", ANY]
    }.freeze

    # @param message [Object] a message body, parsed from JSON
    # @return [String, nil] what is wrong with it, or nil for a well-formed domain event
    def self.problem(message)
      return "not a JSON object: #{JSON.generate(message)[0, 60]}" unless message.is_a?(Hash)

      KEYS.each do |key, (expected, valid)|
        return "missing #{key}" unless message.key?(key)
        next if valid.call(message[key])

        return "#{key} is not #{expected}: #{JSON.generate(message[key])[0, 60]}"
      end
      nil
    end
  end

  # One message as pgmq.read returns it, its JSON parsed with string keys.
  Message = Struct.new(:msg_id, :read_ct, :message, :headers, keyword_init: true) do
    def self.from_row(row)
      headers = row["headers"] && JSON.parse(row["headers"])
      new(msg_id: Integer(row["msg_id"]), read_ct: Integer(row["read_ct"]),
          message: JSON.parse(row["message"]), headers:)
    end
  end

  # A PGMQ queue, through PGMQ's SQL functions with bound parameters.
  class Queue
    COLUMNS = "msg_id, read_ct, message, headers"
    READ = "SELECT #{COLUMNS} FROM pgmq.read($1::text, $2::integer, $3::integer)".freeze
    READ_WITH_POLL = "SELECT #{COLUMNS} FROM pgmq.read_with_poll($1::text, $2::integer, " \
                     "$3::integer, $4::integer, $5::integer)".freeze
    DELETE = "SELECT * FROM pgmq.delete($1::text, $2::bigint[])"
    ARCHIVE = "SELECT * FROM pgmq.archive($1::text, $2::bigint[])"
    IDS = PG::TextEncoder::Array.new(elements_type: PG::TextEncoder::Integer.new)

    attr_reader :name

    def initialize(connection, name)
      @connection = connection
      @name = name
    end

    # Reads up to qty messages and hides them from other readers for visibility_timeout
    # seconds; when none is visible, waits up to wait seconds for one.
    # @return [Array<Message>]
    def read(qty:, visibility_timeout:, wait: 0)
      params = [name, visibility_timeout, qty]
      rows = if wait.zero?
               @connection.exec_params(READ, params)
             else
               @connection.exec_params(READ_WITH_POLL, [*params, wait, POLL_INTERVAL_MS])
             end
      rows.map { |row| Message.from_row(row) }
    end

    # @return [Array<Integer>] the msg_ids deleted
    def delete(msg_ids) = acknowledge(DELETE, msg_ids)

    # @return [Array<Integer>] the msg_ids moved to the archive
    def archive(msg_ids) = acknowledge(ARCHIVE, msg_ids)

    private

    def acknowledge(sql, msg_ids)
      @connection.exec_params(sql, [name, IDS.encode(msg_ids)]).column_values(0).map { Integer(_1) }
    end
  end

  # Reads, checks, handles and acknowledges the messages of one queue.
  class Consumer
    def initialize(queue, options, out: $stdout, err: $stderr)
      @queue = queue
      @options = options
      @out = out
      @err = err
      # event_ids handled by this run. A consumer whose work must happen exactly once keeps
      # them in its own database instead, written in the transaction that does the work.
      @handled = Set.new
      @counts = { "processed" => 0, "duplicate" => 0, "rejected" => 0 }
      @acknowledged = { "deleted" => 0, "archived" => 0 }
      @deadline = options[:timeout] && (monotonic + options[:timeout])
    end

    # Consumes batches until the queue is drained or a limit is reached.
    # @return [String] why it stopped
    def run
      loop do
        return "stopped at --max-messages" if limit_reached?
        return "stopped at --timeout" if @deadline && monotonic >= @deadline

        messages = @queue.read(qty: batch_size, visibility_timeout: @options[:vt], wait:)
        return "drained" if messages.empty?

        consume(messages)
      end
    end

    # Where a real consumer does its work. An exception raised here stops the consumer before
    # the batch is acknowledged, so the whole batch is read again once --vt has passed.
    # @param event [Hash] the event, with string keys
    def handle_event(event); end

    def rejected? = @counts["rejected"].positive?

    def summary(outcome)
      counts = @counts.map { |status, number| "#{number} #{status}" }.join(", ")
      acknowledged = @acknowledged.map { |how, number| "#{number} #{how}" }.join(", ")
      "ruby_consumer: #{@queue.name} #{outcome} after #{read_count} messages: #{counts}; " \
        "#{acknowledged}"
    end

    private

    def read_count = @counts.values.sum

    def limit_reached? = @options[:max_messages] && read_count >= @options[:max_messages]

    def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    def batch_size
      limit = @options[:max_messages]
      limit ? [@options[:batch_size], limit - read_count].min : @options[:batch_size]
    end

    def wait
      return @options[:wait] unless @deadline

      [@options[:wait], (@deadline - monotonic).ceil].min.clamp(0..)
    end

    # PGMQ returns a batch in no particular order; msg_id order is publish order.
    def consume(messages)
      rejected, done = messages.sort_by(&:msg_id).map { |message| [message, check(message)] }
                               .partition { |_message, status| status == "rejected" }
      acknowledge(done.map { |message, _| message.msg_id }, archive: @options[:archive])
      acknowledge(rejected.map { |message, _| message.msg_id }, archive: true)
    end

    # Handles one message and reports it; raises Crash once --crash-after messages were read.
    # @return [String] processed, duplicate or rejected
    def check(message)
      problem = Envelope.problem(message.message)
      status = problem ? "rejected" : handle(message.message)
      @counts[status] += 1
      report(message, status, problem)
      raise Crash if read_count == @options[:crash_after]

      status
    end

    def handle(event)
      return "duplicate" if @handled.include?(event["event_id"])

      handle_event(event)
      @handled << event["event_id"]
      "processed"
    end

    def acknowledge(msg_ids, archive:)
      return if msg_ids.empty?

      done = archive ? @queue.archive(msg_ids) : @queue.delete(msg_ids)
      @acknowledged[archive ? "archived" : "deleted"] += done.size
      # A message missing here was acknowledged by someone else: its visibility timeout ran
      # out while this batch was handled, and another consumer read it again.
      missing = msg_ids - done
      @err.puts("ruby_consumer: already gone from #{@queue.name}: #{missing}") if missing.any?
    end

    def report(message, status, problem)
      record = [message, status, problem]
      @out.puts(@options[:json] ? json_line(*record) : text_line(*record))
    end

    def json_line(message, status, problem)
      record = { "status" => status, **message.to_h.transform_keys(&:to_s) }
      record["problem"] = problem if problem
      JSON.generate(record.sort.to_h)
    end

    def text_line(message, status, problem)
      fields = [status, "msg_id=#{message.msg_id}", "read_ct=#{message.read_ct}"]
      return [*fields, "problem=#{problem.to_json}"].join(" ") if problem

      event = message.message
      [*fields, "event_id=#{event["event_id"]}", "event_name=#{event["event_name"]}",
       "correlation_id=#{event["metadata"]["correlation_id"]}"].join(" ")
    end
  end

  # The command line: options, the connection, exit statuses.
  module CLI
    DEFAULTS = { batch_size: 50, vt: 30, wait: 0, archive: false, json: false }.freeze

    # Each option: its key, its switch, what its value is (:url, :flag, or the least integer
    # accepted) and its help.
    OPTIONS = [
      [:database_url, "--database-url URL", :url, "PostgreSQL URL (default: $DATABASE_URL)"],
      [:batch_size, "--batch-size N", 1, "messages read at once (default: 50)"],
      [:vt, "--vt SECONDS", 1, "visibility timeout: how long a read message stays hidden",
       "from other readers before it is read again unless", "acknowledged (default: 30)"],
      [:archive, "--archive", :flag, "archive handled messages (pgmq.a_<queue>) instead",
       "of deleting them"],
      [:wait, "--wait SECONDS", 0, "when no message is visible, wait up to this long for",
       "one before exiting (default: 0)"],
      [:max_messages, "--max-messages N", 1, "stop after reading N messages"],
      [:timeout, "--timeout SECONDS", 1, "stop reading new batches after this long"],
      [:json, "--json", :flag, "print each message as one JSON object: status, msg_id,",
       "read_ct, message, headers and, when rejected, problem"],
      [:crash_after, "--crash-after N", 1, "exit with status 4 right after handling the Nth",
       "message, acknowledging nothing of its batch, as a", "killed consumer would"]
    ].freeze

    # @param argv [Array<String>]
    # @return [Integer] the exit status
    def self.main(argv)
      options = parse(argv)
      connection = PG.connect(options[:database_url], connect_timeout: CONNECT_TIMEOUT)
      consume(connection, options)
    rescue OptionParser::ParseError => e
      warn("ruby_consumer: #{e.message} (see --help)")
      EXIT_USAGE
    rescue PG::Error => e
      warn("ruby_consumer: cannot consume #{options[:namespace]}_domain_events: #{e.message}")
      EXIT_DATABASE
    ensure
      connection&.close
    end

    def self.consume(connection, options)
      $stdout.sync = true
      queue = Queue.new(connection, "#{options[:namespace]}_domain_events")
      consumer = Consumer.new(queue, options)
      warn(consumer.summary(consumer.run))
      consumer.rejected? ? EXIT_REJECTED : EXIT_OK
    rescue Crash
      warn(consumer.summary("crashed on purpose"))
      exit!(EXIT_CRASHED) # no cleanup, no acknowledgement: what a killed process leaves
    rescue PG::UndefinedTable
      warn("ruby_consumer: queue #{queue.name} does not exist: nothing was published in " \
           "namespace #{options[:namespace]} yet")
      EXIT_DATABASE
    end

    # @return [Hash] the options, with :namespace and :database_url
    def self.parse(argv)
      options = DEFAULTS.merge(database_url: ENV.fetch("DATABASE_URL", nil))
      namespace = namespace(parser(options).parse(argv))
      if options[:database_url].to_s.empty?
        raise OptionParser::MissingArgument, "no database: set DATABASE_URL or pass --database-url"
      end

      options.merge(namespace:)
    end

    def self.namespace(arguments)
      raise OptionParser::MissingArgument, "NAMESPACE" if arguments.empty?
      raise OptionParser::NeedlessArgument, arguments.drop(1).join(" ") if arguments.size > 1
      return arguments.first if NAMESPACE.match?(arguments.first)

      raise OptionParser::InvalidArgument,
            "namespace must match #{NAMESPACE.source}: #{arguments.first.inspect}"
    end

    def self.parser(options)
      OptionParser.new do |opts|
        opts.banner = "usage: ruby_consumer.rb [options] NAMESPACE\n\n" \
                      "Consume the durable domain events of NAMESPACE_domain_events."
        opts.separator("")
        OPTIONS.each { |option| define(opts, options, option) }
        opts.separator("")
        opts.separator("exit status: 0 every message handled, 1 some messages rejected " \
                       "(archived),\n2 usage error, 3 PostgreSQL or PGMQ error, 4 after " \
                       "--crash-after")
      end
    end

    def self.define(opts, options, option)
      key, switch, kind, *help = option
      case kind
      when :flag then opts.on(switch, *help) { options[key] = true }
      when :url then opts.on(switch, *help) { |value| options[key] = value }
      else opts.on(switch, Integer, *help) { |value| options[key] = at_least(kind, value) }
      end
    end

    def self.at_least(minimum, value)
      return value if value >= minimum

      raise OptionParser::InvalidArgument, "#{value} (must be at least #{minimum})"
    end
  end
end

exit(DomainEventConsumer::CLI.main(ARGV)) if $PROGRAM_NAME == __FILE__
