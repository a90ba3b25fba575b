# frozen_string_literal: true

module TaskerEvents
  class CLI
    # `tasker-events validate`: the checks `TaskerEvents.start(templates:)` makes, run before a
    # deploy instead of at a worker's start.
    class Validate < Command
      command "validate",
              summary: "check task templates as TaskTemplate.load does",
              arguments: "PATH... [options]",
              description: <<~TEXT
                Loads each task template with TaskerEvents::TaskTemplate.load: event names,
                namespace, conditions, delivery modes, JSON Schemas, duplicate events. A
                directory stands for every *.yaml and *.yml file under it. Prints an ok line
                per good file on stdout and load's message per bad file on stderr; the exit
                status is 1 when any file is bad. Needs no database.
              TEXT

      private

      def call(operands)
        raise UsageError, "validate needs at least one PATH" if operands.empty?

        results = operands.flat_map { |path| check_path(path) }
        bad = results.count(false)
        progress "#{bad} of #{results.size} templates are invalid" if bad.positive?
        bad.zero? ? EXIT_OK : EXIT_FAILURE
      end

      # @return [Array<Boolean>] one result per template file
      def check_path(path)
        return [check_file(path)] unless File.directory?(path)

        files = Dir.glob(File.join(path, "**", "*.{yaml,yml}"))
        if files.empty?
          err.puts "#{path}: no task templates (*.yaml, *.yml) in this directory"
          return [false]
        end
        files.sort.map { |file| check_file(file) }
      end

      def check_file(path)
        out.puts "ok #{path}: #{describe(TaskTemplate.load(path))}"
        true
      rescue TemplateError => e
        err.puts e.message
        false
      end

      def describe(template)
        events = template.steps.sum { |step| step[:publishes_events].size } +
                 template.domain_events.size
        "#{template.name} #{template.version} (namespace #{template.namespace}, " \
          "#{count(template.steps.size, "step")}, #{count(events, "declared event")})"
      end

      def count(number, noun)
        "#{number} #{noun}#{"s" unless number == 1}"
      end
    end
  end
end
