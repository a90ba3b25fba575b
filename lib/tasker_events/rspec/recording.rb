# frozen_string_literal: true

module TaskerEvents
  module RSpec
    # The events published while a block ran, as {Recorder#record} saw them.
    class Recording
      # @return [Array<Hash{Symbol => Object}>] frozen events, in routing order
      attr_reader :events

      # @return [Integer] events published in the block that the capture no longer held when
      #   the block ended (discarded past its limit, or cleared by the block)
      attr_reader :missing

      # @return [Numeric] seconds each flush waited at most
      attr_reader :flush_timeout

      # @param events [Array<Hash>]
      # @param missing [Integer]
      # @param settled [Boolean] whether both flushes, before and after the block, finished
      # @param flush_timeout [Numeric]
      def initialize(events:, missing:, settled:, flush_timeout:)
        @events = events
        @missing = missing
        @settled = settled
        @flush_timeout = flush_timeout
      end

      # @return [Boolean] false when events may still have been in flight: a flush timed out
      def settled?
        @settled
      end

      # @param delivery_mode [Symbol, String]
      # @return [Array<Hash>] the events of one delivery mode
      def in_mode(delivery_mode)
        events.select { |event| event[:delivery_mode] == delivery_mode.to_s }
      end

      # @return [Hash{Symbol => Array<Hash>}] the events of each delivery mode
      def by_mode
        DELIVERY_MODES.to_h { |mode| [mode, in_mode(mode)] }
      end
    end
  end
end
