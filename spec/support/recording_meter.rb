# frozen_string_literal: true

# Stand-ins for an OpenTelemetry meter provider and its synchronous instruments, with the
# signatures of the OpenTelemetry Ruby API, recording every call.
module RecordingMeter
  # Records every call of an OpenTelemetry synchronous instrument.
  class Instrument
    attr_reader :kind, :options, :calls

    def initialize(kind, options)
      @kind = kind
      @options = options
      @calls = []
    end

    def add(value, attributes: {}) = @calls << [value, attributes]
    def record(value, attributes: {}) = @calls << [value, attributes]

    def total(attributes)
      @calls.select { |_, attrs| attrs == attributes }.sum(&:first)
    end
  end

  # A meter provider with the OpenTelemetry API's shape: `meter(name, version:)` returns a
  # meter with `create_counter`, `create_up_down_counter` and `create_histogram`.
  class Provider
    attr_reader :meters, :instruments

    def initialize
      @meters = []
      @instruments = {}
    end

    def meter(name, version: nil)
      @meters << [name, version]
      self
    end

    %i[counter up_down_counter histogram].each do |kind|
      define_method(:"create_#{kind}") do |name, unit: nil, description: nil|
        @instruments[name] = Instrument.new(kind, { unit:, description: })
      end
    end
  end
end
