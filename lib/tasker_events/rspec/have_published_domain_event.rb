# frozen_string_literal: true

module TaskerEvents
  module RSpec
    # The block matcher behind {Helpers#have_published_domain_event}: passes when the block
    # published events matching every criterion given, as many times as required (at least
    # once unless told otherwise). Needs test mode; see {Recorder} for how it records.
    #
    # - `with_payload(expected)`: the whole payload matches; a Hash is compared exactly (use
    #   `hash_including` or `a_hash_including` for part of it), and RSpec matchers may appear
    #   anywhere inside.
    # - `with_metadata(expected)`: a Hash names only the metadata keys to check, since
    #   metadata always carries fields a test cannot predict (`fired_at`, ids); any other
    #   matcher is applied to the whole metadata.
    # - `in_mode(:durable | :fast | :broadcast)`: the event's delivery mode, exactly.
    # - `exactly(n)`, `at_least(n)`, `at_most(n)`, `once`, `twice`, and `times` to read well.
    #
    # Keys may be written as Strings or Symbols, in the expectation and in the published
    # payload alike: they are compared as Symbols. With `not_to`, it
    # passes when the count is not met (no matching event at all, without a count). Failure
    # messages list what the block published instead, with the first criterion each event
    # failed. Neither passes when a flush timed out, since events may still have been in flight.
    #
    # @example
    #   expect { handler.call }
    #     .to have_published_domain_event("payment.processed")
    #     .with_payload(hash_including(amount: 99.99)).with_metadata(namespace: "payments")
    #     .in_mode(:durable).exactly(1).times
    class HavePublishedDomainEvent
      include ::RSpec::Matchers::Composable

      # Most events a failure message lists.
      LISTED = 10

      # @param event_name [String, Symbol, Regexp, #===] the event name, or a matcher of it
      # @param recorder [Recorder]
      def initialize(event_name, recorder: Recorder.new)
        @criteria = EventCriteria.new(event_name)
        @count = nil
        @recorder = recorder
      end

      # @param payload [Hash, Object] the whole payload, or an RSpec matcher of it
      # @return [self]
      def with_payload(payload)
        @criteria.payload = payload
        self
      end

      # @param metadata [Hash, Object] metadata keys to check, or a matcher of all of it
      # @return [self]
      def with_metadata(metadata)
        @criteria.metadata = metadata
        self
      end

      # @param delivery_mode [Symbol, String] :durable, :fast or :broadcast
      # @return [self]
      # @raise [ArgumentError] for another value
      def in_mode(delivery_mode)
        @criteria.delivery_mode = delivery_mode
        self
      end

      # @param count [Integer, :once, :twice]
      # @return [self]
      def exactly(count) = expect_count(:exactly, count)

      # @param count [Integer, :once, :twice]
      # @return [self]
      def at_least(count) = expect_count(:at_least, count)

      # @param count [Integer, :once, :twice]
      # @return [self]
      def at_most(count) = expect_count(:at_most, count)

      # @return [self]
      def once = exactly(1)

      # @return [self]
      def twice = exactly(2)

      # For reading: `exactly(3).times`.
      # @return [self]
      def times = self
      alias time times

      # @param block [Proc]
      # @return [Boolean]
      def matches?(block)
        record(block)
        @recording.settled? && count_met?
      end

      # @param block [Proc]
      # @return [Boolean]
      def does_not_match?(block)
        record(block)
        @recording.settled? && !count_met?
      end

      # @return [true]
      def supports_block_expectations? = true

      # @return [false]
      def supports_value_expectations? = false

      # @return [String]
      def description
        "have published #{expected}"
      end

      # @return [String]
      def failure_message
        "expected the block to publish #{expected}, but it published #{matched}.\n#{report}"
      end

      # @return [String]
      def failure_message_when_negated
        "expected the block not to publish #{expected}, but it published #{matched}.\n#{report}"
      end

      private

      def expect_count(kind, count)
        count = { once: 1, twice: 2 }.fetch(count, count)
        unless count.is_a?(Integer) && count >= 0
          raise ArgumentError, "#{kind} expects a count of at least 0, got #{count.inspect}"
        end

        @count = [kind, count]
        self
      end

      def record(block)
        unless block.is_a?(Proc)
          raise ArgumentError, "have_published_domain_event needs a block: " \
                               "expect { ... }.to have_published_domain_event(...)"
        end

        @recording = @recorder.record(&block)
        @matched = @recording.events.select { |event| @criteria.matches?(event) }
      end

      def count_met?
        kind, count = @count || [:at_least, 1]
        case kind
        when :exactly then @matched.size == count
        when :at_least then @matched.size >= count
        else @matched.size <= count
        end
      end

      def expected
        "#{@criteria.description} #{count_description}"
      end

      def count_description
        return "at least once" unless @count

        kind, count = @count
        "#{kind.to_s.tr("_", " ")} #{count} #{count == 1 ? "time" : "times"}"
      end

      def matched
        case @matched.size
        when 0 then "no such event"
        when 1 then "1 such event"
        else "#{@matched.size} such events"
        end
      end

      def report
        (event_lines(@recording.events) + notes).join("\n")
      end

      def event_lines(events)
        return ["Nothing was published in the block."] if events.empty?

        lines = ["Published in the block (#{events.size}):"]
        lines.concat(events.first(LISTED).map { |event| "  - #{@criteria.describe_event(event)}" })
        lines << "  ... and #{events.size - LISTED} more" if events.size > LISTED
        lines
      end

      def notes
        notes = []
        if @recording.missing.positive?
          notes << "#{@recording.missing} events published in the block were no longer held " \
                   "by the capture (past its limit of #{TaskerEvents.capture_limit}, or " \
                   "cleared) and were not checked."
        end
        unless @recording.settled?
          notes << "TaskerEvents.flush did not finish within #{@recording.flush_timeout}s: " \
                   "events may still have been in flight."
        end
        notes
      end
    end
  end
end
