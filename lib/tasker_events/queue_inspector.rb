# frozen_string_literal: true

require "tasker_events"

module TaskerEvents
  # A read-only view of the durable queues of one database, for operators: every
  # `*_domain_events` queue with PGMQ's metrics, and the messages of one queue read with a
  # plain SELECT on its table. Nothing is consumed: read counts and visibility timeouts stay
  # as they were, so consumers cannot tell that anyone looked. Independent of
  # {TaskerEvents.start}; the Rust core holds one connection per inspector.
  #
  # @example
  #   TaskerEvents::QueueInspector.open(ENV.fetch("DATABASE_URL")) do |inspector|
  #     inspector.peek("payments", limit: 5).each { |row| puts row[:message][:event_name] }
  #   end
  class QueueInspector
    DEFAULT_CONNECT_TIMEOUT_MS = 5000

    # The order in which the keys of a queue's and of a message's Hash come, for output that
    # reads from the identifier on.
    QUEUE_KEYS = %i[queue_name namespace queue_length oldest_msg_age_sec newest_msg_age_sec
                    total_messages].freeze
    MESSAGE_KEYS = %i[msg_id read_ct enqueued_at vt message headers].freeze

    # Connects, yields the inspector and closes it, or returns it without a block.
    # @param database_url [String]
    # @param connect_timeout_ms [Integer]
    # @yieldparam inspector [QueueInspector]
    # @return [Object] the block's value, or the inspector without a block
    # @raise (see #initialize)
    def self.open(database_url, connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS)
      inspector = new(database_url, connect_timeout_ms:)
      return inspector unless block_given?

      begin
        yield inspector
      ensure
        inspector.close
      end
    end

    # Opens the first connection at once, so a wrong URL or a server that is down is reported
    # here rather than at the first query.
    # @param database_url [String]
    # @param connect_timeout_ms [Integer]
    # @raise [ConfigError] when the URL cannot be parsed
    # @raise [DatabaseUnreachableError] when PostgreSQL cannot be reached or refuses the login
    def initialize(database_url, connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS)
      @native = Native::QueueInspector.connect(String(database_url), Integer(connect_timeout_ms))
    end

    # @return [String] the database URL with its password masked
    def url
      @native.url
    end

    # @return [Array<Hash>] per queue, by name: queue_name, namespace, queue_length,
    #   oldest_msg_age_sec and newest_msg_age_sec (nil when empty), total_messages (ever sent)
    # @raise [PgmqNotInstalledError] when PGMQ is not installed
    # @raise [DatabaseUnreachableError] when the connection is lost
    def queues
      @native.queues.map { |queue| queue.slice(*QUEUE_KEYS) }
    end

    # Messages of `namespace`'s queue, oldest first, as they are in the table.
    # @param namespace [String]
    # @param after [Integer, nil] nil for the newest `limit` messages, else the msg_id to
    #   continue after
    # @param limit [Integer] at most this many messages
    # @return [Array<Hash>] msg_id, read_ct, enqueued_at, vt (UTC ISO 8601 strings), message
    #   (the event, symbol keys), headers
    # @raise [QueueNotFoundError] naming the queue and the ones that exist
    # @raise [PgmqNotInstalledError] (a QueueNotFoundError) when PGMQ is not installed
    # @raise [ValidationError] for an invalid namespace
    def peek(namespace, after: nil, limit: 10)
      after = Integer(after) unless after.nil?
      @native.peek(namespace.to_s, after, Integer(limit)).map { |row| row.slice(*MESSAGE_KEYS) }
    end

    # @param namespace [String]
    # @return [Integer] the newest msg_id in the queue, 0 when it is empty
    def last_msg_id(namespace)
      peek(namespace, limit: 1).last&.fetch(:msg_id) || 0
    end

    # Closes the connection; later calls raise {Error}. Safe to call twice.
    # @return [void]
    def close
      @native.close
    end
  end
end
